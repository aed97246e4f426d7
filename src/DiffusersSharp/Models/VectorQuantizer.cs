using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>VectorQuantizer</c> (models/autoencoders/vae.py, v0.25.1) as <c>VQModel</c> builds it (beta 0.25, no
/// remap, <c>legacy</c>, not <c>sane_index_shape</c>): each latent vector (over the channels) is replaced by its nearest
/// codebook vector (<c>argmin</c> of <c>torch.cdist</c>). Weight name: <c>embedding</c> (num_vq_embeddings × vq_embed_dim).
/// </summary>
public sealed class VectorQuantizer : nn.Module
{
    private readonly Embedding embedding;

    /// <summary>diffusers' <c>beta</c>: the commitment term's weight in the loss (VQModel's 0.25).</summary>
    public double Beta { get; }
    /// <summary>diffusers' <c>n_e</c>: vectors in the codebook.</summary>
    public int NumEmbeddings { get; }
    /// <summary>diffusers' <c>vq_embed_dim</c>: the size of a codebook vector.</summary>
    public int EmbedDim { get; }

    /// <summary>A codebook of <paramref name="numEmbeddings"/> vectors of <paramref name="embedDim"/> values.</summary>
    public VectorQuantizer(int numEmbeddings, int embedDim, double beta = 0.25) : base(nameof(VectorQuantizer))
    {
        (NumEmbeddings, EmbedDim, Beta) = (numEmbeddings, embedDim, beta);
        embedding = Layers.Embedding(numEmbeddings, embedDim);
        RegisterComponents();
    }

    /// <summary>The codebook (num_vq_embeddings × vq_embed_dim), the module's own parameter.</summary>
    public Tensor Codebook => embedding.weight!;

    /// <summary>
    /// diffusers' <c>forward</c>: the nearest codebook vector of every position of <paramref name="z"/> (B, vq_embed_dim, H,
    /// W), as <c>z + (z_q - z)</c> (the straight-through form, kept for its float rounding); the loss
    /// <c>mean((z_q - z)²) + beta · mean((z_q - z)²)</c>; the indices. The caller owns the result.
    /// </summary>
    public VectorQuantizerOutput Forward(Tensor z)
    {
        ModelInputs.NotEmpty(z, "VectorQuantizer", "z");
        if (z.dim() != 4 || z.shape[1] != EmbedDim)
            throw new ArgumentException($"VectorQuantizer expects latents of shape (batch, {EmbedDim}, height, width), got {Layers.Shape(z)}", nameof(z));
        using var scope = torch.NewDisposeScope();
        var zh = z.permute(0, 2, 3, 1).contiguous();
        var flat = zh.view(-1, EmbedDim);
        var indices = torch.cdist(flat, Codebook).argmin(1);
        var zq = embedding.forward(indices).view(zh.shape);
        var loss = (zq - zh).pow(2).mean() + Beta * (zq - zh).pow(2).mean();
        var straight = zh + (zq - zh);
        var quantized = straight.permute(0, 3, 1, 2).contiguous();
        return new VectorQuantizerOutput(quantized.MoveToOuterDisposeScope(), loss.MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// diffusers' <c>get_codebook_entry</c>: the codebook vectors of <paramref name="indices"/> (int64), shaped as
    /// <paramref name="shape"/> (batch, height, width, channel) and returned as (batch, channel, height, width); the caller
    /// owns the result.
    /// </summary>
    public Tensor GetCodebookEntry(Tensor indices, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length != 4 || shape.Any(s => s < 1) || shape[3] != EmbedDim)
            throw new ArgumentException($"VectorQuantizer.GetCodebookEntry: shape must be (batch, height, width, {EmbedDim}) with every size at least 1, got ({string.Join(", ", shape)})", nameof(shape));
        if (indices.dtype != ScalarType.Int64 || indices.numel() != shape[0] * shape[1] * shape[2])
            throw new ArgumentException($"VectorQuantizer.GetCodebookEntry: indices must be int64 with one index per position (batch·height·width = {shape[0] * shape[1] * shape[2]}), got {indices.dtype} of shape {Layers.Shape(indices)}", nameof(indices));
        using var scope = torch.NewDisposeScope();
        var rows = ModelInputs.Lookup(() => embedding.forward(indices.reshape(-1)), indices, NumEmbeddings, nameof(indices),
            bad => $"VectorQuantizer.GetCodebookEntry: codebook indices {string.Join(", ", bad)} are outside the codebook of {NumEmbeddings} vectors (0 to {NumEmbeddings - 1})");
        return rows.view(shape).permute(0, 3, 1, 2).contiguous().MoveToOuterDisposeScope();
    }
}
