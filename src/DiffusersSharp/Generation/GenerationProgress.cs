namespace DiffusersSharp.Generation;

/// <summary>
/// Reported after each denoising step of a <see cref="GenerationService"/> run: <paramref name="Step"/> of
/// <paramref name="TotalSteps"/> are done, at <paramref name="SecondsPerStep"/> (mean so far), about
/// <paramref name="Remaining"/> left; <paramref name="PreviewPng"/> is a small PNG of the first image in progress on the
/// steps a preview is due (<see cref="GenerationService.PreviewEvery"/>), else null.
/// </summary>
public sealed record GenerationProgress(int Step, int TotalSteps, double SecondsPerStep, TimeSpan Remaining, byte[]? PreviewPng);
