using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPVisionEmbeddings</c>: the class embedding, then the patches (a convolution of kernel and
/// stride <c>patch_size</c>, no bias, flattened row by row), plus the position embedding.
/// </summary>
internal sealed class CLIPVisionEmbeddings : nn.Module
{
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;

    public CLIPVisionEmbeddings(CLIPVisionConfig c) : base(nameof(CLIPVisionEmbeddings))
    {
        class_embedding = new Parameter(torch.empty(c.HiddenSize, dtype: Layers.BuildDType ?? ScalarType.Float32));
        patch_embedding = Layers.Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize, bias: false);
        position_embedding = Layers.Embedding(c.NumPositions, c.HiddenSize);
        // transformers' position_ids buffer is not persistent: arange(num_positions), made in Forward instead
        RegisterComponents();
    }

    public Tensor Forward(Tensor pixelValues)
    {
        using var scope = torch.NewDisposeScope();
        long b = pixelValues.shape[0];
        var patches = patch_embedding.forward(pixelValues).flatten(2).transpose(1, 2);       // [b, patches, hidden]
        var cls = class_embedding.view(1, 1, -1).expand(b, 1, -1);
        var h = torch.cat([cls, patches], dim: 1);
        var positions = torch.arange(h.shape[1], dtype: ScalarType.Int64, device: h.device).unsqueeze(0);
        return (h + position_embedding.forward(positions)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers' <c>CLIPVisionTransformer</c> (the <c>vision_model</c> of <see cref="CLIPVisionModelWithProjection"/>):
/// embeddings, <c>pre_layrnorm</c>, the encoder layers of the text tower without a mask, and the pooled output
/// <c>post_layernorm(last_hidden_state[:, 0])</c>.
/// </summary>
internal sealed class CLIPVisionTransformer : nn.Module
{
    private readonly CLIPVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm;
    private readonly CLIPEncoder encoder;
    private readonly LayerNorm post_layernorm;

    /// <summary>transformers' non-persistent buffer, present in older files: left out without a word.</summary>
    public const string PositionIdsKey = "vision_model.embeddings.position_ids";

    public CLIPVisionTransformer(CLIPVisionConfig config) : base(nameof(CLIPVisionTransformer))
    {
        embeddings = new CLIPVisionEmbeddings(config);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: Layers.BuildDType);
        encoder = new CLIPEncoder(config.EncoderShape);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: Layers.BuildDType);
        RegisterComponents();
        _linears = new LinearWeightLayout(this);
    }

    // fp32 linear weights kept column-major on the CPU, as in the text tower
    private readonly LinearWeightLayout _linears;

    /// <summary>The last hidden state, the pooled output and, when asked, every hidden state (owned by the caller).</summary>
    public (Tensor Last, Tensor Pooled, List<Tensor>? Hidden) Forward(Tensor pixelValues, bool outputHiddenStates)
    {
        _linears.Follow();
        using var scope = torch.NewDisposeScope();
        var h = pre_layrnorm.forward(embeddings.Forward(pixelValues));
        var hidden = outputHiddenStates ? new List<Tensor> { h } : null;
        foreach (var layer in encoder.Layers)
        {
            h = layer.Forward(h, null);
            hidden?.Add(h);
        }
        var pooled = post_layernorm.forward(h.select(1, 0));
        h.MoveToOuterDisposeScope();
        pooled.MoveToOuterDisposeScope();
        if (hidden is not null) foreach (var t in hidden) t.MoveToOuterDisposeScope();
        return (h, pooled, hidden);
    }
}
