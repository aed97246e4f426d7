using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>VQModel</c>: every argument of diffusers 0.25.1's <c>VQModel.__init__</c>
/// (models/vq_model.py), with its default.
/// </summary>
public sealed record VQModelConfig : DiffusersConfig
{
    /// <summary><c>in_channels</c>: channels of the images the encoder takes.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    /// <summary><c>out_channels</c>: channels of the images the decoder returns.</summary>
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    /// <summary><c>down_block_types</c>: the encoder's block types ("DownEncoderBlock2D").</summary>
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    /// <summary><c>up_block_types</c>: the decoder's block types ("UpDecoderBlock2D").</summary>
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    /// <summary><c>block_out_channels</c>: output channels of each encoder block (reversed for the decoder); n blocks scale by 2^(n-1).</summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
    /// <summary><c>layers_per_block</c>: resnets per encoder block (decoder blocks have one more).</summary>
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 1;
    /// <summary><c>act_fn</c>: the activation of the resnets and before the output convolutions.</summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    /// <summary><c>latent_channels</c>: channels of the latent space (the encoder's output, the decoder's input).</summary>
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 3;
    /// <summary><c>sample_size</c>: the image size the model was trained on (not used by the model itself).</summary>
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;
    /// <summary><c>num_vq_embeddings</c>: vectors in the codebook.</summary>
    [JsonPropertyName("num_vq_embeddings")] public int NumVqEmbeddings { get; init; } = 256;
    /// <summary><c>norm_num_groups</c>: groups of the GroupNorms.</summary>
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;
    /// <summary><c>vq_embed_dim</c>: the codebook vectors' size (<c>quant_conv</c>'s output channels); null: <c>latent_channels</c>.</summary>
    [JsonPropertyName("vq_embed_dim")] public int? VqEmbedDim { get; init; }
    /// <summary><c>scaling_factor</c>: LDMPipeline divides the latents by it before decoding.</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 0.18215;
    /// <summary><c>norm_type</c>: the decoder's norms, "group" or "spatial" (the latter, Kandinsky's MoVQ, is not ported).</summary>
    [JsonPropertyName("norm_type")] public string NormType { get; init; } = "group";
    /// <summary><c>mid_block_add_attention</c>: the encoder's and decoder's mid blocks have their self-attention.</summary>
    [JsonPropertyName("mid_block_add_attention")] public bool MidBlockAddAttention { get; init; } = true;
    /// <summary><c>lookup_from_codebook</c>: <c>decode(force_not_quantize: true)</c> takes codebook indices, not latents.</summary>
    [JsonPropertyName("lookup_from_codebook")] public bool LookupFromCodebook { get; init; }
    /// <summary><c>force_upcast</c>: stored for diffusers; no pipeline of this port reads it for a VQModel.</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; }

    /// <summary>The codebook vectors' size: <see cref="VqEmbedDim"/>, or <see cref="LatentChannels"/> when it is null.</summary>
    [JsonIgnore] public int EffectiveVqEmbedDim => VqEmbedDim ?? LatentChannels;
}
