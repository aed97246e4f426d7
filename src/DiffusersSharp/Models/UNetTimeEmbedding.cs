using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The time embedding of a UNet: <c>time_embedding(time_proj(timesteps).to(dtype), timestep_cond)</c>. The projection
/// has no weights (sinusoidal, Fourier) or a table ("learned") and returns float32, hence the cast.
/// </summary>
internal sealed class UNetTimeEmbedding(nn.Module<Tensor, Tensor> timeProj, TimestepEmbedding timeEmbedding) : IUNetEmbedding
{
    public Tensor Forward(UNetEmbeddingInputs inputs)
    {
        var tEmb = timeProj.forward(inputs.Timesteps);
        inputs.Hook?.Invoke("time_proj", tEmb);
        var emb = timeEmbedding.Forward(tEmb.to_type(inputs.DType), inputs.TimestepCond);
        inputs.Hook?.Invoke("time_embedding", emb);
        return emb;
    }
}
