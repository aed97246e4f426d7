using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>add_noise / get_velocity of the alpha-based schedulers (DDPM, DDIM, PNDM, LCM, DPM-Solver ...).</summary>
internal static class AlphaMath
{
    /// <summary><c>sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε</c> with ᾱ indexed by the integer timesteps.</summary>
    public static Tensor AddNoise(SchedulerBase s, Tensor alphasCumprod, Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var (sa, s1a) = Coefficients(s, alphasCumprod, original, timesteps);
        return (sa * original + s1a * noise).MoveToOuterDisposeScope();
    }

    /// <summary><c>sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0</c>.</summary>
    public static Tensor GetVelocity(SchedulerBase s, Tensor alphasCumprod, Tensor sample, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var (sa, s1a) = Coefficients(s, alphasCumprod, sample, timesteps);
        return (sa * noise - s1a * sample).MoveToOuterDisposeScope();
    }

    private static (Tensor, Tensor) Coefficients(SchedulerBase s, Tensor alphasCumprod, Tensor like, Tensor timesteps)
    {
        var ac = alphasCumprod.to(like.dtype, like.device);
        var idx = IndexTensor(s, timesteps, alphasCumprod.shape[0]).to(like.device);
        var a = ac.index_select(0, idx.flatten());
        var sqrtAlpha = a.pow(0.5).flatten();
        while (sqrtAlpha.dim() < like.dim()) sqrtAlpha = sqrtAlpha.unsqueeze(-1);
        var sqrtOneMinus = (1 - a).pow(0.5).flatten();
        while (sqrtOneMinus.dim() < like.dim()) sqrtOneMinus = sqrtOneMinus.unsqueeze(-1);
        return (sqrtAlpha, sqrtOneMinus);
    }

    /// <summary>Integer timesteps in [0, T) as int64, or an error naming the bad value.</summary>
    public static Tensor IndexTensor(SchedulerBase s, Tensor timesteps, long count)
    {
        var cpu = timesteps.to(ScalarType.Float64, CPU);
        foreach (var v in cpu.data<double>())
            if (v != Math.Floor(v) || v < 0 || v >= count)
                throw new DiffusersException($"{s.ClassName}: timestep {v} is not an integer timestep in [0, {count})");
        return timesteps.to(ScalarType.Int64);
    }
}
