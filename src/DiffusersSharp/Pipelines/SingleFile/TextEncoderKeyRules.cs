using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// The key maps of the CLIP text encoders in the original layouts. OpenAI's CLIP (SD 1.x' <c>FrozenCLIPEmbedder</c>,
/// SDXL's first embedder) is stored as transformers' own <c>CLIPTextModel</c> under <c>cond_stage_model.transformer.</c>
/// (or <c>conditioner.embedders.0.transformer.</c>): the keys are the same. OpenCLIP (SD 2.x' <c>FrozenOpenCLIPEmbedder</c>
/// under <c>cond_stage_model.model.</c>, SDXL's bigG under <c>conditioner.embedders.1.model.</c>, the refiner's under
/// <c>conditioner.embedders.0.model.</c>) has <c>transformer.resblocks.{i}</c> with fused q, k, v (<c>attn.in_proj_weight</c>)
/// and a transposed <c>text_projection</c>, as diffusers 0.25.1's <c>convert_open_clip_checkpoint</c> reads them.
/// </summary>
public static class TextEncoderKeyRules
{
    /// <summary>SD 1.x's OpenAI CLIP text encoder (transformers' layout under this prefix).</summary>
    public const string Sd1Prefix = "cond_stage_model.transformer.";
    /// <summary>SD 2.x's OpenCLIP ViT-H text encoder.</summary>
    public const string Sd2Prefix = "cond_stage_model.model.";
    /// <summary>SDXL's first text encoder (OpenAI CLIP ViT-L, transformers' layout).</summary>
    public const string XlFirstPrefix = "conditioner.embedders.0.transformer.";
    /// <summary>SDXL's second text encoder (OpenCLIP ViT-bigG).</summary>
    public const string XlSecondPrefix = "conditioner.embedders.1.model.";
    /// <summary>The SDXL refiner's only text encoder (OpenCLIP ViT-bigG).</summary>
    public const string XlRefinerPrefix = "conditioner.embedders.0.model.";

    /// <summary>One OpenCLIP residual attention block and transformers' CLIPEncoderLayer.</summary>
    public static readonly IReadOnlyList<KeyRename> OpenClipLayer =
    [
        new("ln_1.", "layer_norm1."),
        new("ln_2.", "layer_norm2."),
        new("mlp.c_fc.", "mlp.fc1."),
        new("mlp.c_proj.", "mlp.fc2."),
        new("attn.out_proj.", "self_attn.out_proj."),
        new("attn.in_proj_weight", ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"], TensorChange.Split),
        new("attn.in_proj_bias", ["self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"], TensorChange.Split),
    ];

    /// <summary>transformers' CLIPTextModel under <paramref name="prefix"/>; its old non-persistent <c>position_ids</c> buffer is not used.</summary>
    public static KeyMap OpenAi(string component, string prefix) =>
        new(component, [new KeyRule(prefix, "", [KeyRename.Unused("text_model.embeddings.position_ids")])]);

    /// <summary>
    /// OpenCLIP's text tower under <paramref name="prefix"/> for a diffusers text encoder of <paramref name="config"/>:
    /// its first num_hidden_layers blocks (SD 2.x leaves out the last of OpenCLIP-H's 24, as it takes the penultimate
    /// layer), <c>text_projection</c> when <paramref name="withProjection"/> (CLIPTextModelWithProjection), never
    /// <c>logit_scale</c>.
    /// </summary>
    public static KeyMap OpenClip(string component, string prefix, CLIPTextConfig config, bool withProjection)
    {
        var root = new List<KeyRename>
        {
            new("positional_embedding", "text_model.embeddings.position_embedding.weight"),
            new("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
            new("ln_final.", "text_model.final_layer_norm."),
            withProjection ? new("text_projection", "text_projection.weight", TensorChange.Transpose) : KeyRename.Unused("text_projection"),
            KeyRename.Unused("logit_scale"),
            KeyRename.Unused($"transformer.resblocks.{config.NumHiddenLayers}."),
        };
        var rules = new List<KeyRule> { new(prefix, "", root, KeepOtherTails: false) };
        for (int i = 0; i < config.NumHiddenLayers; i++)
            rules.Add(new KeyRule($"{prefix}transformer.resblocks.{i}.", $"text_model.encoder.layers.{i}.", OpenClipLayer, KeepOtherTails: false));
        return new KeyMap(component, rules);
    }
}
