using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// One embedding a UNet adds into its conditioning vector <c>emb</c> (diffusers' forward, "1. time"): the time
/// embedding, the class embedding, the added embedding (SDXL's "text_time"). Each reads what it needs from the
/// call's <see cref="UNetEmbeddingInputs"/> and returns a (batch, dim) term; the UNet combines them without asking
/// which kind it holds. A missing input is an <see cref="ArgumentException"/> with diffusers' message.
/// </summary>
public interface IUNetEmbedding
{
    /// <summary>
    /// The embedding to add to the time embedding, from the inputs it reads.
    /// </summary>
    Tensor Forward(UNetEmbeddingInputs inputs);
}
