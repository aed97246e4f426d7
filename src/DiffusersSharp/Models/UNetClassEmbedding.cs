using TorchSharp;
using TorchSharp.Modules;
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
        var given = inputs.ClassLabels ?? throw new ArgumentException(missingLabelsMessage);
        long batch = inputs.Timesteps.shape[0];
        // added to (or concatenated with) the time embedding of the batch: one label or one per sample, as the timesteps;
        // the vector kinds (identity, projection, simple_projection) take (B, dim), (1, dim) or one vector (dim), whose
        // embedding torch broadcasts onto the batch
        bool vectors = labelProj is null && classEmbedding is not Embedding;
        if (given.dim() > (vectors ? 1 : 0) && given.shape[0] != 1 && given.shape[0] != batch)
            throw new ArgumentException(
                $"class_labels of shape {Layers.Shape(given)} do not fit a batch of {batch}; pass one {(vectors ? "class vector" : "label")} or one per sample",
                "class_labels");
        var labels = given.to(inputs.Timesteps.device);
        if (labelProj is not null)
            labels = labelProj.forward(labels).to_type(inputs.DType);
        if (classEmbedding is Embedding table)
            return Lookup(table, labels).to_type(inputs.DType);
        return classEmbedding.forward(labels).to_type(inputs.DType);
    }

    /// <summary>
    /// The table's rows for integer labels; a label outside the table fails in libtorch ("index out of range in self", as
    /// in diffusers), which is turned here, on that failure only, into an error naming the label and num_class_embeds.
    /// </summary>
    private static Tensor Lookup(Embedding table, Tensor labels)
    {
        if (labels.is_floating_point() || labels.dtype == ScalarType.Bool)
            throw new ArgumentException($"class_labels must be integer class ids for the num_class_embeds table, got {labels.dtype}", "class_labels");
        long count = table.weight!.shape[0];
        return ModelInputs.Lookup(() => table.forward(labels), labels, count, "class_labels",
            outside => $"class_labels must be in [0, {count}) (num_class_embeds {count}), got {string.Join(", ", outside)}");
    }
}
