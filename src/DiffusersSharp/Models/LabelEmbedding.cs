using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>LabelEmbedding</c> (models/embeddings.py, v0.25.1): an <c>embedding_table</c> of num_classes rows, plus
/// one more, the null class (id num_classes), when <c>dropout_prob &gt; 0</c>: classifier-free guidance's unconditional
/// label. Labels are dropped (replaced by the null class) only in training, as in diffusers; at inference the null class is
/// passed explicitly. Weight name: <c>embedding_table.weight</c>.
/// </summary>
public sealed class LabelEmbedding : nn.Module
{
    private readonly Embedding embedding_table;

    /// <summary>diffusers' <c>num_classes</c>: the real classes (the null class is the id after them).</summary>
    public int NumClasses { get; }
    /// <summary>diffusers' <c>dropout_prob</c>: the training-time probability of dropping a label.</summary>
    public double DropoutProb { get; }
    /// <summary>Rows of the table: <see cref="NumClasses"/>, + 1 for the null class when <see cref="DropoutProb"/> &gt; 0.</summary>
    public long TableSize { get; }

    /// <summary>Builds the block from diffusers' constructor arguments (same names, in .NET casing).</summary>
    public LabelEmbedding(int numClasses, int hiddenSize, double dropoutProb) : base(nameof(LabelEmbedding))
    {
        NumClasses = numClasses;
        DropoutProb = dropoutProb;
        TableSize = numClasses + (dropoutProb > 0 ? 1 : 0);
        embedding_table = Layers.Embedding(TableSize, hiddenSize);
        RegisterComponents();
    }

    /// <summary>The rows of <paramref name="labels"/> (int64, [B]) → [B, hidden]; an id outside the table is an error naming it.</summary>
    public Tensor Forward(Tensor labels)
    {
        if (training && DropoutProb > 0)
        {
            using var scope = NewDisposeScope();
            var drop = rand(labels.shape[0], device: labels.device) < DropoutProb;
            var dropped = where(drop, tensor((long)NumClasses, device: labels.device), labels);
            return Lookup(dropped).MoveToOuterDisposeScope();
        }
        return Lookup(labels);
    }

    private Tensor Lookup(Tensor labels) =>
        ModelInputs.Lookup(() => embedding_table.forward(labels), labels, TableSize, "class_labels", outside =>
            $"class_labels: {string.Join(", ", outside)} {(outside.Length == 1 ? "is" : "are")} outside the label table of {TableSize} rows " +
            $"(classes 0 to {NumClasses - 1}{(TableSize > NumClasses ? $", and {NumClasses}, the null class of classifier-free guidance" : "")})");
}
