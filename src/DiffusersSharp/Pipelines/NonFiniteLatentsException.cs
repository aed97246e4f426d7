namespace DiffusersSharp.Pipelines;

/// <summary>
/// A denoising loop whose latents became NaN or ±Inf: the message names the step and timestep that first produced
/// them. Nothing is decoded after it.
/// </summary>
public sealed class NonFiniteLatentsException(string message) : DiffusersException(message);
