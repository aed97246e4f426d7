using DiffusersSharp.Loading.SingleFile;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// Tells the model family of a single file from its keys, as diffusers 0.25.1 does (its SD 2.x, SDXL base and SDXL
/// refiner marker keys), generalised to the text encoder's prefix so that narrow models of a family are recognised
/// too; and says what a file that is not a Stable Diffusion checkpoint looks like (a LoRA, an embedding, a VAE, a
/// ControlNet, a diffusers model) in the error.
/// </summary>
public static class CheckpointInspection
{
    /// <summary>diffusers' SD 2.x marker: the cross-attention key width 1024 (OpenCLIP-H).</summary>
    public const string Sd2MarkerKey = UNetKeyRules.Prefix + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight";

    /// <summary>
    /// The family of <paramref name="ckpt"/>, or a <see cref="WeightsException"/> naming the file and a key: not a
    /// Stable Diffusion checkpoint (what it looks like instead), or a family this library does not convert.
    /// </summary>
    public static StableDiffusionFamily DetectFamily(OriginalCheckpoint ckpt)
    {
        var keys = ckpt.Shapes.Keys;
        bool Any(string prefix) => keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        if (!Any(UNetKeyRules.Prefix)) throw NotAStableDiffusionCheckpoint(ckpt);

        if (Any(TextEncoderKeyRules.XlSecondPrefix)) return StableDiffusionFamily.StableDiffusionXL;
        if (Any(TextEncoderKeyRules.XlRefinerPrefix)) return StableDiffusionFamily.StableDiffusionXLRefiner;
        if (Any(TextEncoderKeyRules.Sd2Prefix)) return StableDiffusionFamily.StableDiffusion2;
        if (Any(TextEncoderKeyRules.Sd1Prefix + "text_model.")) return StableDiffusionFamily.StableDiffusion1;
        string? other = keys.Where(k => k.StartsWith("cond_stage_model.", StringComparison.Ordinal) || k.StartsWith("conditioner.", StringComparison.Ordinal)
                                        || k.StartsWith("control_model.", StringComparison.Ordinal) || k.StartsWith("embedder.", StringComparison.Ordinal))
            .OrderBy(k => k, StringComparer.Ordinal).FirstOrDefault();
        if (other is not null)
            throw new WeightsException(
                $"{ckpt.Path}: unsupported single-file model family: its conditioning weights ('{other}') are none of Stable Diffusion 1.x " +
                $"({TextEncoderKeyRules.Sd1Prefix}text_model.), 2.x ({TextEncoderKeyRules.Sd2Prefix}), SDXL ({TextEncoderKeyRules.XlSecondPrefix}) " +
                $"or the SDXL refiner ({TextEncoderKeyRules.XlRefinerPrefix})")
            { FilePath = ckpt.Path, Key = other };
        // No text encoder in the file: diffusers' test on the UNet alone (the text encoder must then be given).
        return ckpt.Shape(Sd2MarkerKey) is { } s && s[^1] == 1024 ? StableDiffusionFamily.StableDiffusion2 : StableDiffusionFamily.StableDiffusion1;
    }

    /// <summary>The error for a file without <c>model.diffusion_model.</c> weights, saying what it looks like instead.</summary>
    public static WeightsException NotAStableDiffusionCheckpoint(OriginalCheckpoint ckpt)
    {
        var keys = ckpt.Shapes.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        string? Find(Func<string, bool> test) => keys.FirstOrDefault(test);
        string what;
        string? key;
        if ((key = Find(k => k.Contains("lora", StringComparison.OrdinalIgnoreCase))) is not null)
            what = "it looks like a LoRA (load it into a pipeline as LoRA weights, not as a checkpoint)";
        else if ((key = Find(k => k.StartsWith("string_to_param", StringComparison.Ordinal) || k.StartsWith("string_to_token", StringComparison.Ordinal)
                                  || k is "emb_params" or "clip_l" or "clip_g")) is not null)
            what = "it looks like a textual-inversion embedding (load it as an embedding, not as a checkpoint)";
        else if ((key = Find(k => k.StartsWith("control_model.", StringComparison.Ordinal) || k.Contains("input_hint_block", StringComparison.Ordinal))) is not null)
            what = "it looks like a ControlNet";
        else if ((key = Find(k => k.StartsWith("encoder.", StringComparison.Ordinal) || k.StartsWith("decoder.", StringComparison.Ordinal)
                                  || k.StartsWith(VaeKeyRules.Prefix, StringComparison.Ordinal))) is not null)
            what = "it looks like a VAE alone";
        else if ((key = Find(k => k.StartsWith("down_blocks.", StringComparison.Ordinal) || k.StartsWith("text_model.", StringComparison.Ordinal))) is not null)
            what = "it looks like one model in diffusers' layout (load its folder with FromPretrained)";
        else
        {
            key = keys.FirstOrDefault();
            what = keys.Count == 0 ? "it holds no tensors" : $"its keys are not the original layout's (first: {KeyMap.Summarize(keys.Take(3).ToList())})";
        }
        return new WeightsException(
            $"{ckpt.Path} is not a Stable Diffusion checkpoint: it has no '{UNetKeyRules.Prefix}' UNet weights; {what}{(key is null ? "" : $" (key '{key}')")}")
        { FilePath = ckpt.Path, Key = key };
    }

    /// <summary>True when the family takes two text encoders or the refiner's one (the SDXL pipelines).</summary>
    public static bool IsXl(StableDiffusionFamily f) =>
        f is StableDiffusionFamily.StableDiffusionXL or StableDiffusionFamily.StableDiffusionXLRefiner;
}
