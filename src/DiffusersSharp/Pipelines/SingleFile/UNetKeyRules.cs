using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// The key map of a UNet2DConditionModel in the original layout (LDM/SGM <c>openaimodel.UNetModel</c> under
/// <c>model.diffusion_model.</c>), generated from the diffusers config as diffusers 0.25.1's
/// <c>convert_ldm_unet_checkpoint</c> and <c>convert_diffusers_to_original_(stable_diffusion|sdxl).py</c> lay it out:
/// <c>input_blocks.{k}</c> counts the down path's resnets (<c>.0</c>, with the transformer as <c>.1</c>) and downsamplers
/// (<c>.0.op</c>) in order, <c>middle_block.0/1/2</c> is resnet, transformer, resnet, <c>output_blocks.{k}</c> counts the up
/// path's resnets with the upsampler after the transformer (<c>.2.conv</c>) or after the resnet (<c>.1.conv</c>).
/// </summary>
public static class UNetKeyRules
{
    /// <summary>The prefix of the UNet's keys in an original checkpoint.</summary>
    public const string Prefix = "model.diffusion_model.";

    /// <summary>LDM's ResBlock names (in_layers = GroupNorm, SiLU, conv; out_layers = GroupNorm, SiLU, dropout, conv).</summary>
    public static readonly IReadOnlyList<KeyRename> Resnet =
    [
        new("in_layers.0.", "norm1."),
        new("in_layers.2.", "conv1."),
        new("emb_layers.1.", "time_emb_proj."),
        new("out_layers.0.", "norm2."),
        new("out_layers.3.", "conv2."),
        new("skip_connection.", "conv_shortcut."),
    ];

    /// <summary>
    /// The key map of a UNet built from <paramref name="c"/>, its original keys under <paramref name="prefix"/>.
    /// </summary>
    public static KeyMap Create(UNet2DConditionModelConfig c, string prefix = Prefix)
    {
        var rules = new List<KeyRule>();
        void Module(string original, string diffusers) => rules.Add(new KeyRule(prefix + original, diffusers));
        void ResnetAt(string original, string diffusers) => rules.Add(new KeyRule(prefix + original, diffusers, Resnet, KeepOtherTails: false));

        Module("time_embed.0.", "time_embedding.linear_1.");
        Module("time_embed.2.", "time_embedding.linear_2.");
        // SGM's label_emb is SDXL's addition embedding, or a class embedding (diffusers' class_embed_type).
        string? labelEmb = c.AdditionEmbedType == "text_time" ? "add_embedding"
            : c.ClassEmbedType is "timestep" or "projection" ? "class_embedding" : null;
        if (labelEmb is not null)
        {
            Module("label_emb.0.0.", labelEmb + ".linear_1.");
            Module("label_emb.0.2.", labelEmb + ".linear_2.");
        }
        else if (c.NumClassEmbeds is not null)
            Module("label_emb.", "class_embedding.");
        Module("input_blocks.0.0.", "conv_in.");

        int n = c.BlockOutChannels.Length;
        int[] layers = PerBlock(c.LayersPerBlock, n);
        int k = 1;
        for (int i = 0; i < n; i++)
        {
            bool attention = c.DownBlockTypes[i].Contains("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < layers[i]; j++, k++)
            {
                ResnetAt($"input_blocks.{k}.0.", $"down_blocks.{i}.resnets.{j}.");
                if (attention) Module($"input_blocks.{k}.1.", $"down_blocks.{i}.attentions.{j}.");
            }
            if (i < n - 1) Module($"input_blocks.{k++}.0.op.", $"down_blocks.{i}.downsamplers.0.conv.");
        }

        if (c.MidBlockType == "UNetMidBlock2DCrossAttn")
        {
            ResnetAt("middle_block.0.", "mid_block.resnets.0.");
            Module("middle_block.1.", "mid_block.attentions.0.");
            ResnetAt("middle_block.2.", "mid_block.resnets.1.");
        }
        else if (c.MidBlockType == "UNetMidBlock2D")
        {
            ResnetAt("middle_block.0.", "mid_block.resnets.0.");
            ResnetAt("middle_block.1.", "mid_block.resnets.1.");
        }

        int[] upLayers = layers.Reverse().ToArray();
        k = 0;
        for (int i = 0; i < n; i++)
        {
            bool attention = c.UpBlockTypes[i].Contains("CrossAttn", StringComparison.Ordinal);
            int count = upLayers[i] + 1;
            for (int j = 0; j < count; j++, k++)
            {
                ResnetAt($"output_blocks.{k}.0.", $"up_blocks.{i}.resnets.{j}.");
                if (attention) Module($"output_blocks.{k}.1.", $"up_blocks.{i}.attentions.{j}.");
                if (j == count - 1 && i < n - 1)
                    Module($"output_blocks.{k}.{(attention ? 2 : 1)}.conv.", $"up_blocks.{i}.upsamplers.0.conv.");
            }
        }
        Module("out.0.", "conv_norm_out.");
        Module("out.2.", "conv_out.");
        return new KeyMap("unet", rules);
    }

    internal static int[] PerBlock(int[] values, int n) =>
        values.Length == 1 ? Enumerable.Repeat(values[0], n).ToArray() : values;
}
