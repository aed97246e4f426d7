namespace DiffusersSharp.Loading;

/// <summary>
/// How a model folder names its weights and what its <c>config.json</c> carries: diffusers' <c>ModelMixin</c>
/// layout (<c>diffusion_pytorch_model[.variant].safetensors</c> / <c>.bin</c>, configs stamped with
/// <c>_class_name</c> and <c>_diffusers_version</c>) or transformers' <c>PreTrainedModel</c> layout
/// (<c>model[.variant].safetensors</c> / <c>pytorch_model[.variant].bin</c>, no diffusers keys). Both may be
/// sharded (<c>{name}.safetensors.index[.variant].json</c>).
/// </summary>
/// <param name="SafetensorsName">Stem of the safetensors weights and their shard index.</param>
/// <param name="BinName">Stem of the pickled torch weights and their shard index.</param>
/// <param name="StampsDiffusersKeys">Whether <c>SavePretrained</c> writes <c>_class_name</c> and <c>_diffusers_version</c>.</param>
public sealed record CheckpointFormat(string SafetensorsName, string BinName, bool StampsDiffusersKeys)
{
    /// <summary>diffusers' models (UNets, VAEs).</summary>
    public static CheckpointFormat Diffusers { get; } = new(ModelLoading.WeightsName, ModelLoading.WeightsName, true);

    /// <summary>transformers' models (the CLIP text encoders).</summary>
    public static CheckpointFormat Transformers { get; } = new("model", "pytorch_model", false);

    /// <summary>
    /// The weight files looked for, in order of preference: <c>{safetensors}[.{variant}].safetensors</c>, its shard
    /// index <c>{safetensors}.safetensors.index[.{variant}].json</c>, <c>{bin}[.{variant}].bin</c>, <c>{bin}.bin.index[.{variant}].json</c>.
    /// </summary>
    public IReadOnlyList<string> WeightCandidates(string? variant)
    {
        var safetensors = WeightLoader.CandidateNames(SafetensorsName, variant);
        var bin = WeightLoader.CandidateNames(BinName, variant);
        return [safetensors[0], safetensors[1], bin[2], bin[3]];
    }

    /// <summary>The file <c>SavePretrained</c> writes: <c>{safetensors}[.{variant}].safetensors</c>.</summary>
    public string WeightFileName(string? variant) => WeightCandidates(variant)[0];
}
