using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// The key map of an AutoencoderKL in the original layout (LDM's <c>Encoder</c>/<c>Decoder</c> under
/// <c>first_stage_model.</c>), generated from the diffusers config as diffusers 0.25.1's <c>convert_ldm_vae_checkpoint</c>
/// and the reverse scripts lay it out: <c>encoder.down.{i}.block.{j}</c>, <c>decoder.up.{n-1-i}</c> (the decoder's
/// levels are numbered from the bottom), <c>mid.block_1/2</c>, <c>mid.attn_1</c> with 1×1 convolutions for q, k, v,
/// proj_out where diffusers has linears.
/// </summary>
public static class VaeKeyRules
{
    /// <summary>The prefix of the VAE's keys in an original checkpoint.</summary>
    public const string Prefix = "first_stage_model.";

    /// <summary>LDM's VAE ResnetBlock: as diffusers' but the 1×1 shortcut is <c>nin_shortcut</c>.</summary>
    public static readonly IReadOnlyList<KeyRename> Resnet = [new("nin_shortcut.", "conv_shortcut.")];

    /// <summary>LDM's AttnBlock (GroupNorm + 1×1 conv q, k, v, proj_out) and diffusers' Attention.</summary>
    public static readonly IReadOnlyList<KeyRename> Attention =
    [
        new("norm.", "group_norm."),
        new("q.weight", "to_q.weight", TensorChange.Conv1x1ToLinear),
        new("q.bias", "to_q.bias"),
        new("k.weight", "to_k.weight", TensorChange.Conv1x1ToLinear),
        new("k.bias", "to_k.bias"),
        new("v.weight", "to_v.weight", TensorChange.Conv1x1ToLinear),
        new("v.bias", "to_v.bias"),
        new("proj_out.weight", "to_out.0.weight", TensorChange.Conv1x1ToLinear),
        new("proj_out.bias", "to_out.0.bias"),
    ];

    /// <summary>
    /// The key map of a VAE built from <paramref name="c"/>, its original keys under <paramref name="prefix"/>.
    /// </summary>
    public static KeyMap Create(AutoencoderKLConfig c, string prefix = Prefix)
    {
        var rules = new List<KeyRule>();
        void Module(string original, string diffusers, IReadOnlyList<KeyRename>? renames = null, bool keep = true) =>
            rules.Add(new KeyRule(prefix + original, diffusers, renames ?? [], keep));

        foreach (var side in new[] { "encoder", "decoder" })
        {
            Module($"{side}.conv_in.", $"{side}.conv_in.");
            Module($"{side}.norm_out.", $"{side}.conv_norm_out.");
            Module($"{side}.conv_out.", $"{side}.conv_out.");
            Module($"{side}.mid.block_1.", $"{side}.mid_block.resnets.0.", Resnet);
            Module($"{side}.mid.attn_1.", $"{side}.mid_block.attentions.0.", Attention, keep: false);
            Module($"{side}.mid.block_2.", $"{side}.mid_block.resnets.1.", Resnet);
        }
        Module("quant_conv.", "quant_conv.");
        Module("post_quant_conv.", "post_quant_conv.");

        int n = c.BlockOutChannels.Length;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c.LayersPerBlock; j++)
                Module($"encoder.down.{i}.block.{j}.", $"encoder.down_blocks.{i}.resnets.{j}.", Resnet);
            if (i < n - 1) Module($"encoder.down.{i}.downsample.conv.", $"encoder.down_blocks.{i}.downsamplers.0.conv.");

            int level = n - 1 - i;
            for (int j = 0; j < c.LayersPerBlock + 1; j++)
                Module($"decoder.up.{level}.block.{j}.", $"decoder.up_blocks.{i}.resnets.{j}.", Resnet);
            if (i < n - 1) Module($"decoder.up.{level}.upsample.conv.", $"decoder.up_blocks.{i}.upsamplers.0.conv.");
        }
        return new KeyMap("vae", rules);
    }
}
