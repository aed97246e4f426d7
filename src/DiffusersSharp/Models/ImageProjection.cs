using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ImageProjection</c> (models/embeddings.py, 0.25.1; the basic IP-Adapter): <c>image_embeds</c> Linear to
/// <c>num_image_text_embeds · cross_attention_dim</c>, reshaped to tokens, then <c>norm</c> LayerNorm.
/// </summary>
public sealed class ImageProjection : nn.Module, IImageProjection
{
    private readonly Linear image_embeds;
    private readonly LayerNorm norm;

    /// <summary>diffusers' constructor arguments.</summary>
    public ImageProjection(int imageEmbedDim = 768, int crossAttentionDim = 768, int numImageTextEmbeds = 32) : base(nameof(ImageProjection))
    {
        image_embeds = Layers.Linear(imageEmbedDim, (long)numImageTextEmbeds * crossAttentionDim);
        norm = nn.LayerNorm(crossAttentionDim, dtype: Layers.BuildDType);
        NumTokens = numImageTextEmbeds;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public bool TakesHiddenStates => false;

    /// <inheritdoc/>
    public int NumTokens { get; }

    /// <inheritdoc/>
    public Tensor Forward(Tensor imageEmbeds)
    {
        using var scope = torch.NewDisposeScope();
        var h = image_embeds.forward(imageEmbeds).reshape(imageEmbeds.shape[0], NumTokens, -1);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
