using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The surface every diffusers scheduler shares (diffusers' <c>SchedulerMixin</c> + the per-class methods a
/// pipeline calls). Timesteps are passed as <see cref="double"/> (every int64 timestep below 2^53 and every
/// float32 timestep is exact in a double) or as a 0-dim tensor taken from <see cref="Timesteps"/>.
/// </summary>
public interface IScheduler
{
    /// <summary>The diffusers class name, e.g. <c>DDPMScheduler</c>.</summary>
    string ClassName { get; }

    /// <summary>The typed config the scheduler was built from.</summary>
    SchedulerConfig Config { get; }

    /// <summary><c>num_train_timesteps</c>.</summary>
    int NumTrainTimesteps { get; }

    /// <summary>Model calls per step of the solver (diffusers' <c>order</c>: 1, Heun 2, PNDM/DPM-Solver per config).</summary>
    int Order { get; }

    /// <summary>The timesteps of the loop, in the library's dtype (int64, or float32 for the sigma-based Euler/LMS/Heun).</summary>
    Tensor Timesteps { get; }

    /// <summary>The steps requested by the last <see cref="SetTimesteps(int, Device?)"/> (null before).</summary>
    int? NumInferenceSteps { get; }

    /// <summary>The standard deviation of the initial noise: multiply the first <c>randn</c> draw by it.</summary>
    double InitNoiseSigma { get; }

    /// <summary>
    /// When set, every noise draw made inside <c>Step</c> calls this (with the shape) instead of drawing from a
    /// generator: replays recorded noise (diffusers' <c>variance_noise</c> argument, generalised).
    /// </summary>
    Func<long[], Tensor>? NoiseSource { get; set; }

    /// <summary>Sets the discrete timesteps of the loop (diffusers' <c>set_timesteps(num_inference_steps, device)</c>).</summary>
    void SetTimesteps(int numInferenceSteps, Device? device = null);

    /// <summary>Custom timesteps (descending), where the diffusers class accepts them; others throw.</summary>
    void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null);

    /// <summary>Scales the denoising model input for timestep <paramref name="timestep"/> (identity for most).</summary>
    Tensor ScaleModelInput(Tensor sample, double timestep);

    /// <summary>One step of the reverse process.</summary>
    SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null);

    /// <summary>The forward process: <c>original</c> noised to <c>timesteps</c> (one per batch item).</summary>
    Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);
}
