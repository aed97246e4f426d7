using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>add_noise / get_velocity of the alpha-based schedulers (DDPM, DDIM, PNDM, LCM).</summary>
internal static class AlphaMath
{
    /// <summary>
    /// DDIM's (and DDIM inverse's) step 3: the predicted x0 and ε from the model output of
    /// <paramref name="predictionType"/> (epsilon, sample or v_prediction), with sqrt(ᾱ_t) and sqrt(1 - ᾱ_t) as float32.
    /// </summary>
    public static (Tensor PredOriginal, Tensor PredEpsilon) PredictOriginalAndEpsilon(string predictionType, Tensor modelOutput, Tensor sample,
        float sqrtAlpha, float sqrtBeta) => predictionType switch
        {
            "epsilon" => ((sample - sqrtBeta * modelOutput) / sqrtAlpha, modelOutput),
            "sample" => (modelOutput, (sample - sqrtAlpha * modelOutput) / sqrtBeta),
            _ => (sqrtAlpha * sample - sqrtBeta * modelOutput, sqrtAlpha * modelOutput + sqrtBeta * sample),
        };

    /// <summary><c>sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε</c> with ᾱ indexed by the integer timesteps.</summary>
    public static Tensor AddNoise(SchedulerBase s, float[] alphasCumprod, Tensor original, Tensor noise, Tensor timesteps)
    {
        s.CheckNoiseInputs("add_noise", original, "original_samples", noise, timesteps);
        using var scope = torch.NewDisposeScope();
        var (sa, s1a) = Coefficients(s, alphasCumprod, original, timesteps);
        return (sa * original + s1a * noise).MoveToOuterDisposeScope();
    }

    /// <summary><c>sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0</c>.</summary>
    public static Tensor GetVelocity(SchedulerBase s, float[] alphasCumprod, Tensor sample, Tensor noise, Tensor timesteps)
    {
        s.CheckNoiseInputs("get_velocity", sample, "sample", noise, timesteps);
        using var scope = torch.NewDisposeScope();
        var (sa, s1a) = Coefficients(s, alphasCumprod, sample, timesteps);
        return (sa * noise - s1a * sample).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>alphas_cumprod.to(dtype)[timesteps] ** 0.5</c> and <c>(1 - that) ** 0.5</c>, shaped to broadcast against
    /// <paramref name="like"/>. The square roots are taken here (correctly rounded, as torch 1.13's kernel), not by
    /// libtorch's vector maths, so they are the same on every CPU.
    /// </summary>
    private static (Tensor, Tensor) Coefficients(SchedulerBase s, float[] alphasCumprod, Tensor like, Tensor timesteps)
    {
        var idx = Indices(s, timesteps, alphasCumprod.Length);
        var a = torch.tensor(idx.Select(i => alphasCumprod[i]).ToArray(), ScalarType.Float32).to(like.dtype);
        var sqrtAlpha = Sqrt(a).to(like.device).flatten();
        var sqrtOneMinus = Sqrt(1 - a).to(like.device).flatten();
        while (sqrtAlpha.dim() < like.dim()) sqrtAlpha = sqrtAlpha.unsqueeze(-1);
        while (sqrtOneMinus.dim() < like.dim()) sqrtOneMinus = sqrtOneMinus.unsqueeze(-1);
        return (sqrtAlpha, sqrtOneMinus);
    }

    /// <summary>The square root of a small CPU tensor, element by element in float32, returned in its dtype.</summary>
    private static Tensor Sqrt(Tensor x)
    {
        using var f = x.to(ScalarType.Float32);
        var values = f.data<float>().Select(ExactFloat32.Sqrt).ToArray();
        return torch.tensor(values, ScalarType.Float32).reshape(x.shape).to(x.dtype);
    }

    /// <summary>Integer timesteps in [0, T), or an error naming the bad value.</summary>
    public static long[] Indices(SchedulerBase s, Tensor timesteps, long count)
    {
        using var cpu = timesteps.to(ScalarType.Float64, CPU);
        var values = cpu.data<double>().ToArray();
        foreach (var v in values)
            if (v != Math.Floor(v) || v < 0 || v >= count)
                throw new DiffusersException($"{s.ClassName}: timestep {v} is not an integer timestep in [0, {count})");
        return values.Select(v => (long)v).ToArray();
    }
}
