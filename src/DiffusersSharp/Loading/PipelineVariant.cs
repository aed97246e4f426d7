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

    /// <summary>
    /// The options to load <paramref name="component"/> of the pipeline whose <c>model_index.json</c> is
    /// <paramref name="index"/>: <paramref name="options"/> as they are when its folder holds the variant (or no variant
    /// is asked for), else without the variant (diffusers: <c>loading_kwargs["variant"] = model_variants.pop(name, None)</c>).
    /// A model loaded on its own keeps the variant it is given, and fails without its files, as diffusers' ModelMixin does.
    /// </summary>
    public static LoadOptions For(LoadOptions options, PipelineIndex index, string component) =>
        options.Variant is { } v && !FolderHolds(System.IO.Path.Combine(Folder(index), component), v) ? options with { Variant = null } : options;

    /// <summary>
    /// Refuses a <paramref name="variant"/> that no component folder of the pipeline holds: asking for it would load
    /// the plain weights of every component without a word (diffusers 0.25.1 raises when the Hub has no file of the
    /// variant: "defaulting to non-variant modeling files is deprecated", an error since 0.24).
    /// </summary>
    public static void RequireSomewhere(PipelineIndex index, string? variant)
    {
        if (variant is null) return;
        string folder = Folder(index);
        var components = index.Components.Where(c => !c.IsEmpty && !Hub.PipelineFileSelection.IsNotLoaded(c.Name)
                                                     && Directory.Exists(System.IO.Path.Combine(folder, c.Name))).Select(c => c.Name).ToList();
        if (components.Any(c => FolderHolds(System.IO.Path.Combine(folder, c), variant))) return;
        throw new WeightsException(
            $"{folder}: no component of the pipeline has '{variant}' weights (no file like diffusion_pytorch_model.{variant}.safetensors "
            + $"in {string.Join(", ", components)}); load it without the variant (variant null)")
        { FilePath = folder };
    }

    private static string Folder(PipelineIndex index) => System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(index.Path))!;
}
