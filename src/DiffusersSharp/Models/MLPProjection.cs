using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>MLPProjection</c> (IP-Adapter full face): <c>ff</c> = FeedForward(image_embed_dim → cross_attention_dim,
/// mult 1, gelu), then <c>norm</c> LayerNorm, token by token. diffusers gives it 257 tokens (ViT-H/14's 256 patches and
/// the class token).
/// </summary>
public sealed class MLPProjection : nn.Module, IImageProjection
{
    /// <summary>diffusers' <c>num_image_text_embeds</c> for the full-face adapter, a constant in 0.25.1.</summary>
    public const int FullFaceTokens = 257;

    private readonly FeedForward ff;
    private readonly LayerNorm norm;

    /// <summary>diffusers' constructor arguments.</summary>
    public MLPProjection(int imageEmbedDim = 1024, int crossAttentionDim = 1024) : base(nameof(MLPProjection))
    {
        ff = new FeedForward(imageEmbedDim, crossAttentionDim, mult: 1, activationFn: "gelu");
        norm = nn.LayerNorm(crossAttentionDim, dtype: Layers.BuildDType);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public bool TakesHiddenStates => true;

    /// <inheritdoc/>
    public int NumTokens => FullFaceTokens;

    /// <inheritdoc/>
    public Tensor Forward(Tensor imageEmbeds)
    {
        using var scope = torch.NewDisposeScope();
        return norm.forward(ff.Forward(imageEmbeds)).MoveToOuterDisposeScope();
    }
}
