using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What <see cref="IScheduler.Step(Tensor, double, Tensor, StepOptions?)"/> returns (diffusers' <c>SchedulerOutput</c>
/// and its per-class variants): the sample of the previous timestep and, where the scheduler computes one, the
/// predicted denoised sample x0.
/// </summary>
public sealed class SchedulerOutput : IDisposable
{
    /// <summary>Wraps a step's results; the output owns the tensors.</summary>
    public SchedulerOutput(Tensor prevSample, Tensor? predOriginalSample = null)
    {
        PrevSample = prevSample;
        PredOriginalSample = predOriginalSample;
    }

    /// <summary>x_{t-1}: the next model input of the denoising loop.</summary>
    public Tensor PrevSample { get; }

    /// <summary>The predicted x0 of this step (null where the scheduler does not compute it).</summary>
    public Tensor? PredOriginalSample { get; }

    /// <summary>Disposes <see cref="PredOriginalSample"/> only (the caller usually keeps <see cref="PrevSample"/>).</summary>
    public void Dispose() => PredOriginalSample?.Dispose();
}
