using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPTextConfig</c> (the <c>config.json</c> of a Stable Diffusion <c>text_encoder/</c>
/// folder); defaults are transformers 4.36's. Keys not modelled here (architectures, torch_dtype, …) are kept
/// in <see cref="DiffusersConfig.Extra"/>. A full <c>CLIPModel</c> config (<c>"model_type": "clip"</c>) is read from its
/// <c>text_config</c> object, its other keys dropped, as transformers' <c>CLIPTextConfig.from_pretrained</c> does.
/// </summary>
[SubConfig("clip", "text_config")]
public sealed record CLIPTextConfig : DiffusersConfig
{
    /// <summary><c>vocab_size</c>: rows of the token embedding (49408 for CLIP's BPE vocabulary).</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 49408;
    /// <summary>
    /// <c>hidden_size</c>: width of the token embeddings and of every layer's output (768 in SD 1.x, 1024 in SD 2.x).
    /// </summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 512;
    /// <summary><c>intermediate_size</c>: width of the MLP's hidden layer.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 2048;
    /// <summary><c>projection_dim</c>: output width of <c>text_projection</c> (CLIPTextModelWithProjection).</summary>
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 512;
    /// <summary><c>num_hidden_layers</c>: encoder layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    /// <summary><c>num_attention_heads</c>: heads of each self-attention.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 8;
    /// <summary>
    /// <c>max_position_embeddings</c>: rows of the position embedding: the longest prompt in tokens (77).
    /// </summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 77;
    /// <summary>"quick_gelu" (OpenAI CLIP, SD 1.x), "gelu" (OpenCLIP, SD 2.x), "gelu_new", "gelu_pytorch_tanh", "relu", "silu".</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "quick_gelu";
    /// <summary><c>layer_norm_eps</c>: epsilon of the LayerNorms.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-5;
    /// <summary><c>attention_dropout</c>: dropout on the attention weights (only active in training).</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary>
    /// <c>initializer_range</c>: standard deviation of transformers' weight initialisation; kept for round trips.
    /// </summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    /// <summary>
    /// <c>initializer_factor</c>: scale of transformers' weight initialisation; kept for round trips.
    /// </summary>
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    /// <summary>
    /// <c>pad_token_id</c>: the padding token's id as the config states it (the tokenizer pads with its own pad
    /// token).
    /// </summary>
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; } = 1;
    /// <summary><c>bos_token_id</c>: id of the start-of-text token.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; } = 49406;
    /// <summary>
    /// Where the pooled output is taken: the first position of this id, or, for the legacy value 2 of older
    /// OpenAI/OpenCLIP configs, the position of the largest input id (transformers 4.36).
    /// </summary>
    [JsonPropertyName("eos_token_id")] public int? EosTokenId { get; init; } = 49407;
    /// <summary>diffusers passes the tokenizer's attention mask to the encoder only when this is true (absent in SD configs).</summary>
    [JsonPropertyName("use_attention_mask"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? UseAttentionMask { get; init; }
    /// <summary><c>model_type</c>: transformers' model type name ("clip_text_model").</summary>
    [JsonPropertyName("model_type")] public string? ModelType { get; init; } = "clip_text_model";

    /// <summary>Checks the values a model cannot be built with; <paramref name="source"/> names the file.</summary>
    public void Validate(string source)
    {
        void Positive(int v, string key)
        {
            if (v <= 0) throw new ConfigException($"{source}: {key} must be positive, got {v}") { FilePath = source, Key = key };
        }
        Positive(VocabSize, "vocab_size");
        Positive(HiddenSize, "hidden_size");
        Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new ConfigException($"{source}: hidden_size ({HiddenSize}) must be divisible by num_attention_heads ({NumAttentionHeads})")
            { FilePath = source, Key = "hidden_size" };
        if (!CLIPActivation.IsSupported(HiddenAct))
            throw new ConfigException($"{source}: hidden_act '{HiddenAct}' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish)")
            { FilePath = source, Key = "hidden_act" };
        if (EosTokenId is null)
            throw new ConfigException($"{source}: eos_token_id is null; the pooled output needs it") { FilePath = source, Key = "eos_token_id" };
        ModelConfigRanges.Clip(this, source);
    }
}
