using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Timesteps</c> (models/embeddings.py, v0.25.1): the sinusoidal embedding of a 1-D tensor of
/// (possibly fractional) timesteps, <see cref="GetTimestepEmbedding"/>. No weights. Always float32, on
/// the timesteps' device.
/// </summary>
public sealed class Timesteps : nn.Module<Tensor, Tensor>
{
    /// <summary>diffusers' <c>num_channels</c>: width of the embedding.</summary>
    public int NumChannels { get; }
    /// <summary>diffusers' <c>flip_sin_to_cos</c>: cos features before sin.</summary>
    public bool FlipSinToCos { get; }
    /// <summary>diffusers' <c>downscale_freq_shift</c>: the shift in the frequency exponent's denominator.</summary>
    public double DownscaleFreqShift { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Timesteps(int numChannels, bool flipSinToCos, double downscaleFreqShift) : base(nameof(Timesteps))
    {
        NumChannels = numChannels;
        FlipSinToCos = flipSinToCos;
        DownscaleFreqShift = downscaleFreqShift;
        RegisterComponents();
    }

    /// <summary>
    /// The sinusoidal embedding of <paramref name="timesteps"/> [B] → [B, num_channels] (diffusers'
    /// <c>get_timestep_embedding</c>); the caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor timesteps) =>
        GetTimestepEmbedding(timesteps, NumChannels, FlipSinToCos, DownscaleFreqShift);

    /// <inheritdoc/>
    public override Tensor forward(Tensor timesteps) => Forward(timesteps);

    /// <summary>
    /// diffusers' <c>get_timestep_embedding</c>: for N timesteps, [N, embeddingDim] =
    /// [sin(t·f), cos(t·f)] (or [cos, sin] with <paramref name="flipSinToCos"/>), f_i =
    /// exp(-ln(maxPeriod)·i / (half − shift)), zero-padded by one column when embeddingDim is odd.
    /// </summary>
    public static Tensor GetTimestepEmbedding(Tensor timesteps, int embeddingDim, bool flipSinToCos = false,
        double downscaleFreqShift = 1, double scale = 1, int maxPeriod = 10000)
    {
        if (timesteps.dim() != 1)
            throw new ArgumentException($"Timesteps should be a 1d-array, got shape {Layers.Shape(timesteps)}");
        int halfDim = embeddingDim / 2;
        using var scope = torch.NewDisposeScope();
        var exponent = torch.arange(0, halfDim, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(maxPeriod));
        exponent = exponent / (halfDim - downscaleFreqShift);
        var emb = torch.exp(exponent);
        emb = timesteps.unsqueeze(1).to_type(ScalarType.Float32) * emb.unsqueeze(0);
        if (scale != 1) emb = emb * scale;
        emb = torch.cat(new[] { torch.sin(emb), torch.cos(emb) }, dim: -1);
        if (flipSinToCos)
            emb = torch.cat(new[] { emb[.., halfDim..], emb[.., ..halfDim] }, dim: -1);
        if (embeddingDim % 2 == 1)
            emb = nn.functional.pad(emb, new long[] { 0, 1, 0, 0 });
        return emb.MoveToOuterDisposeScope();
    }
}
