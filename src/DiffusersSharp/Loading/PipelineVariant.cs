namespace DiffusersSharp.Loading;

/// <summary>
/// Which components of a pipeline folder load a weights variant (diffusers 0.25.1's <c>model_variants</c>, step 2 of
/// <c>DiffusionPipeline.from_pretrained</c>): the variant goes to a component only when its folder holds a file of that
/// variant; the others load their plain weights. The Hub cache lookup (<see cref="PretrainedLocator"/>) asks the same
/// question of a cached snapshot.
/// </summary>
public static class PipelineVariant
{
    /// <summary>
    /// diffusers' test: <paramref name="folder"/> holds a file whose name's second dot-separated part starts with
    /// <paramref name="variant"/> (<c>diffusion_pytorch_model.fp16.safetensors</c>, <c>model.fp16-00001-of-00002.safetensors</c>).
    /// </summary>
    public static bool FolderHolds(string folder, string variant) =>
        Directory.Exists(folder)
        && Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName)
                    .Any(n => n!.Split('.') is { Length: > 1 } parts && parts[1].StartsWith(variant, StringComparison.Ordinal));
}
