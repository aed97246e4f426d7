namespace DiffusersSharp.Generation;

/// <summary>
/// What a <see cref="GenerationService"/> run produced: the images as PNG files, the seed that drew them (the request's,
/// or the random one chosen for it: give it back to draw the same images), the request as run (with that seed), and the
/// wall time.
/// </summary>
public sealed record GenerationResult(IReadOnlyList<byte[]> Images, long Seed, GenerationRequest Request, TimeSpan Elapsed);
