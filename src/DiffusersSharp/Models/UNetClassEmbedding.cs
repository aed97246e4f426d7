using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The class embedding of a UNet (<c>class_embed_type</c>): <c>class_embedding(class_labels)</c>, the labels first
/// through the time projection for "timestep". The module is a table, a <see cref="TimestepEmbedding"/>, an identity
/// or a linear layer.
/// </summary>
internal sealed class UNetClassEmbedding(nn.Module<Tensor, Tensor> classEmbedding, nn.Module<Tensor, Tensor>? labelProj,
    string missingLabelsMessage) : IUNetEmbedding
{
    public Tensor Forward(UNetEmbeddingInputs inputs)
    {
        var labels = (inputs.ClassLabels ?? throw new ArgumentException(missingLabelsMessage)).to(inputs.Timesteps.device);
        if (labelProj is not null)
            labels = labelProj.forward(labels).to_type(inputs.DType);
        return classEmbedding.forward(labels).to_type(inputs.DType);
    }
}
