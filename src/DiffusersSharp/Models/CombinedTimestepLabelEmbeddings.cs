using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>CombinedTimestepLabelEmbeddings</c> (models/embeddings.py, v0.25.1): the sinusoidal projection of the
/// timestep (256 channels, cos first, shift 1) through a <see cref="TimestepEmbedding"/>, plus the
/// <see cref="LabelEmbedding"/> of the class label (class dropout 0.1: a null-class row). Weight names:
/// <c>timestep_embedder.linear_1</c>, <c>timestep_embedder.linear_2</c>, <c>class_embedder.embedding_table</c>.
/// </summary>
public sealed class CombinedTimestepLabelEmbeddings : nn.Module
{
    private readonly Timesteps time_proj;
    private readonly TimestepEmbedding timestep_embedder;
    private readonly LabelEmbedding class_embedder;

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public CombinedTimestepLabelEmbeddings(int numClasses, int embeddingDim, double classDropoutProb = 0.1)
        : base(nameof(CombinedTimestepLabelEmbeddings))
    {
        time_proj = new Timesteps(256, flipSinToCos: true, downscaleFreqShift: 1);
        timestep_embedder = new TimestepEmbedding(256, embeddingDim);
        class_embedder = new LabelEmbedding(numClasses, embeddingDim, classDropoutProb);
        RegisterComponents();
    }

    /// <summary>The class embedder (its table size names the null class).</summary>
    public LabelEmbedding ClassEmbedder => class_embedder;

    /// <summary>
    /// [B] timesteps and [B] labels → [B, dim] conditioning; the projection is cast to <paramref name="hiddenDType"/>
    /// (the model's dtype) before the MLP, as diffusers casts it. The caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor timestep, Tensor classLabels, ScalarType hiddenDType)
    {
        using var scope = NewDisposeScope();
        var projected = time_proj.Forward(timestep).to(hiddenDType);
        var emb = timestep_embedder.Forward(projected);
        return (emb + class_embedder.Forward(classLabels)).MoveToOuterDisposeScope();
    }
}
