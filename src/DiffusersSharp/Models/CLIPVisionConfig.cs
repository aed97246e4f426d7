using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPVisionConfig</c> (the <c>config.json</c> of an IP-Adapter <c>image_encoder/</c> folder); defaults
/// are transformers 4.36's. Keys not modelled here are kept in <see cref="DiffusersConfig.Extra"/>. A full
/// <c>CLIPModel</c> config (<c>"model_type": "clip"</c>) is read from its <c>vision_config</c> object.
/// </summary>
[SubConfig("clip", "vision_config")]
public sealed record CLIPVisionConfig : DiffusersConfig
{
    /// <summary><c>hidden_size</c>: width of the patch embeddings and of every layer's output.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    /// <summary><c>intermediate_size</c>: width of the MLP's hidden layer.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    /// <summary><c>projection_dim</c>: output width of <c>visual_projection</c> (the image embeds).</summary>
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 512;
    /// <summary><c>num_hidden_layers</c>: encoder layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    /// <summary><c>num_attention_heads</c>: heads of each self-attention.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    /// <summary><c>num_channels</c>: channels of the input image (3).</summary>
    [JsonPropertyName("num_channels")] public int NumChannels { get; init; } = 3;
    /// <summary><c>image_size</c>: side of the square input image in pixels.</summary>
    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 224;
    /// <summary><c>patch_size</c>: side of a patch (the patch convolution's kernel and stride).</summary>
    [JsonPropertyName("patch_size")] public int PatchSize { get; init; } = 32;
    /// <summary>"quick_gelu" (OpenAI CLIP), "gelu" (OpenCLIP, the h94/IP-Adapter encoders), "gelu_new", "gelu_pytorch_tanh", "relu", "silu".</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "quick_gelu";
    /// <summary><c>layer_norm_eps</c>: epsilon of the LayerNorms.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-5;
    /// <summary><c>attention_dropout</c>: dropout on the attention weights (only active in training; not applied here).</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary><c>initializer_range</c>: standard deviation of transformers' weight initialisation; kept for round trips.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>initializer_factor</c>: scale of transformers' weight initialisation; kept for round trips.</summary>
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    /// <summary><c>model_type</c>: transformers' model type name ("clip_vision_model").</summary>
    [JsonPropertyName("model_type")] public string? ModelType { get; init; } = "clip_vision_model";

    /// <summary>Patches per image side: <c>image_size // patch_size</c>.</summary>
    [JsonIgnore] public int PatchesPerSide => ImageSize / PatchSize;

    /// <summary>transformers' <c>num_positions</c>: the patches and the class token.</summary>
    [JsonIgnore] public int NumPositions => PatchesPerSide * PatchesPerSide + 1;

    /// <summary>Checks the values a model cannot be built with; <paramref name="source"/> names the file.</summary>
    public void Validate(string source)
    {
        void Fail(string key, string message) =>
            throw new ConfigException($"{source}: {key} {message}") { FilePath = source, Key = key };
        void Int(string key, long v, long max)
        {
            if (v < 1 || v > max) Fail(key, $"must be between 1 and {max}, got {v}");
        }
        Int("hidden_size", HiddenSize, 1 << 16);
        Int("intermediate_size", IntermediateSize, 1 << 18);
        Int("projection_dim", ProjectionDim, 1 << 16);
        Int("num_hidden_layers", NumHiddenLayers, 256);
        Int("num_attention_heads", NumAttentionHeads, HiddenSize);
        Int("num_channels", NumChannels, 64);
        Int("image_size", ImageSize, 16384);
        Int("patch_size", PatchSize, ImageSize);
        if (HiddenSize % NumAttentionHeads != 0)
            Fail("hidden_size", $"({HiddenSize}) must be divisible by num_attention_heads ({NumAttentionHeads})");
        if (!CLIPActivation.IsSupported(HiddenAct))
            Fail("hidden_act", $"'{HiddenAct}' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish)");
        if (!(LayerNormEps > 0 && LayerNormEps <= 1)) Fail("layer_norm_eps", $"must be a positive number of at most 1, got {LayerNormEps}");
    }

    internal CLIPEncoderShape EncoderShape =>
        new(HiddenSize, IntermediateSize, NumAttentionHeads, NumHiddenLayers, HiddenAct, LayerNormEps, Causal: false);
}
