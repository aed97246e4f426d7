using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// Passed to a Stable Diffusion pipeline's per-step callback after each scheduler step (diffusers'
/// <c>callback_on_step_end</c>): step <paramref name="Index"/> (0-based) of <paramref name="TotalSteps"/> UNet
/// calls, its <paramref name="Timestep"/>, and the <paramref name="Latents"/> after the step (for previews; valid
/// only during the call: clone it to keep it). Cancel through the pipeline call's <c>CancellationToken</c>.
/// </summary>
public sealed record StableDiffusionStep(int Index, int TotalSteps, double Timestep, Tensor Latents, TimeSpan Elapsed);
