using System.Globalization;
using System.Text.Json.Nodes;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// diffusers 0.25.1's <c>create_unet_diffusers_config</c>, <c>create_vae_diffusers_config</c> and the scheduler set-up of
/// <c>download_from_original_stable_diffusion_ckpt</c>: an <see cref="LdmConfig"/> becomes the diffusers configs.
/// </summary>
public static class DiffusersConfigs
{
    /// <summary>diffusers' <c>scheduler_type</c> names and the classes they build.</summary>
    public static readonly IReadOnlyDictionary<string, string> SchedulerTypes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["pndm"] = PNDMScheduler.Name,
        ["lms"] = LMSDiscreteScheduler.Name,
        ["heun"] = HeunDiscreteScheduler.Name,
        ["euler"] = EulerDiscreteScheduler.Name,
        ["euler-ancestral"] = EulerAncestralDiscreteScheduler.Name,
        ["dpm"] = DPMSolverMultistepScheduler.Name,
        ["ddim"] = DDIMScheduler.Name,
    };

    /// <summary>diffusers' <c>vae_scale_factor</c>: 2^(VAE levels - 1), the ratio of image to latent size.</summary>
    public static int VaeScaleFactor(LdmConfig l) => 1 << (l.VaeChMult.Length - 1);

    /// <summary>
    /// The diffusers UNet config of an original one (diffusers' <c>create_unet_diffusers_config</c>) for images of
    /// <paramref name="imageSize"/> pixels.
    /// </summary>
    public static UNet2DConditionModelConfig Unet(LdmConfig l, int imageSize, bool? upcastAttention)
    {
        int n = l.ChannelMult.Length;
        int[] blockOut = l.ChannelMult.Select(m => l.ModelChannels * m).ToArray();
        var down = new string[n];
        var up = new string[n];
        int resolution = 1;
        for (int i = 0; i < n; i++)
        {
            down[i] = l.AttentionResolutions.Contains(resolution) ? "CrossAttnDownBlock2D" : "DownBlock2D";
            if (i != n - 1) resolution *= 2;
        }
        for (int i = 0; i < n; i++)
        {
            up[i] = l.AttentionResolutions.Contains(resolution) ? "CrossAttnUpBlock2D" : "UpBlock2D";
            resolution /= 2;
        }

        int[]? headDim = l.NumHeads is int h ? [h] : null;
        if (l.UseLinearInTransformer && headDim is null)
        {
            int perHead = l.NumHeadChannels ?? throw new ConfigException(
                $"{l.Source}: the UNet config has neither num_heads nor num_head_channels")
            { FilePath = l.Source, Key = "num_head_channels" };
            headDim = l.ChannelMult.Select(m => l.ModelChannels / perHead * m).ToArray();
        }

        string? classEmbed = null, additionEmbed = null;
        int? additionTimeDim = null, projectionInput = null, numClassEmbeds = null;
        if (l.NumClasses == "sequential")
        {
            if (l.ContextDim is 2048 or 1280 || l.IsSgm)
            {
                additionEmbed = "text_time";
                additionTimeDim = 256;
            }
            else classEmbed = "projection";
            projectionInput = l.AdmInChannels ?? throw new ConfigException(
                $"{l.Source}: num_classes is 'sequential' but adm_in_channels is missing")
            { FilePath = l.Source, Key = "adm_in_channels" };
        }
        else if (l.NumClasses is not null)
            numClassEmbeds = int.TryParse(l.NumClasses, NumberStyles.None, CultureInfo.InvariantCulture, out int nc) ? nc
                : throw new ConfigException($"{l.Source}: num_classes '{l.NumClasses}' is neither 'sequential' nor an integer") { FilePath = l.Source, Key = "num_classes" };

        var config = new UNet2DConditionModelConfig
        {
            SampleSize = [imageSize / VaeScaleFactor(l)],
            InChannels = l.InChannels,
            OutChannels = l.OutChannels,
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = blockOut,
            LayersPerBlock = [l.NumResBlocks],
            CrossAttentionDim = l.ContextDim is int ctx ? [ctx] : new UNet2DConditionModelConfig().CrossAttentionDim,
            UseLinearProjection = l.UseLinearInTransformer,
            ClassEmbedType = classEmbed,
            AdditionEmbedType = additionEmbed,
            AdditionTimeEmbedDim = additionTimeDim,
            ProjectionClassEmbeddingsInputDim = projectionInput,
            NumClassEmbeds = numClassEmbeds,
            TransformerLayersPerBlock = TransformerDepth.PerBlock(l.TransformerDepthIsList ? l.TransformerDepth : [l.TransformerDepth[0]]),
            UpcastAttention = upcastAttention ?? false,
        };
        if (headDim is not null) config = config with { AttentionHeadDim = headDim };
        if (l.DisableSelfAttentions is { } only) config = config with { OnlyCrossAttention = only };
        return config;
    }

    /// <summary>
    /// The diffusers VAE config of an original one (diffusers' <c>create_vae_diffusers_config</c>) for images of
    /// <paramref name="imageSize"/> pixels.
    /// </summary>
    public static AutoencoderKLConfig Vae(LdmConfig l, int imageSize) => new()
    {
        SampleSize = [imageSize],
        InChannels = l.VaeInChannels,
        OutChannels = l.VaeOutCh,
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", l.VaeChMult.Length).ToArray(),
        UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", l.VaeChMult.Length).ToArray(),
        BlockOutChannels = l.VaeChMult.Select(m => l.VaeCh * m).ToArray(),
        LatentChannels = l.ZChannels,
        LayersPerBlock = l.VaeNumResBlocks,
        ScalingFactor = l.ScaleFactor ?? 0.18215,
    };

    /// <summary>
    /// The scheduler diffusers builds for a single file: SD 1.x/2.x a DDIM config from the original noise schedule
    /// (steps_offset 1, clip_sample and set_alpha_to_one false) turned into <paramref name="schedulerType"/>'s class
    /// (default "pndm", with skip_prk_steps); SDXL an EulerDiscreteScheduler with SDXL's settings (another
    /// <paramref name="schedulerType"/> than the default is refused: diffusers ignores it).
    /// </summary>
    public static SchedulerBase Scheduler(LdmConfig l, bool xl, string predictionType, string schedulerType = "pndm")
    {
        int timesteps = l.Timesteps is int t && t != 0 ? t : 1000;
        var o = new JsonObject();
        if (xl)
        {
            // diffusers 0.25.1 builds this Euler scheduler whatever scheduler_type says; here another type is refused, not ignored
            if (schedulerType != "pndm")
                throw new ConfigException(
                    $"scheduler_type '{schedulerType}' applies to SD 1.x/2.x single files; an SDXL file gets diffusers' EulerDiscreteScheduler "
                    + "(choose another scheduler for the pipeline afterwards, e.g. generate --scheduler)")
                { Key = "scheduler_type" };
            o["_class_name"] = EulerDiscreteScheduler.Name;
            o["beta_schedule"] = "scaled_linear";
            o["beta_start"] = 0.00085;
            o["beta_end"] = 0.012;
            o["interpolation_type"] = "linear";
            o["num_train_timesteps"] = timesteps;
            o["prediction_type"] = "epsilon";
            o["sample_max_value"] = 1.0;
            o["set_alpha_to_one"] = false;
            o["skip_prk_steps"] = true;
            o["steps_offset"] = 1;
            o["timestep_spacing"] = "leading";
        }
        else
        {
            if (!SchedulerTypes.TryGetValue(schedulerType, out var cls))
                throw new ConfigException($"Scheduler of type '{schedulerType}' doesn't exist (known: {string.Join(", ", SchedulerTypes.Keys)})") { Key = "scheduler_type" };
            o["_class_name"] = cls;
            o["beta_end"] = l.LinearEnd is double e && e != 0 ? e : 0.085;
            o["beta_schedule"] = "scaled_linear";
            o["beta_start"] = l.LinearStart is double s && s != 0 ? s : 0.02;
            o["num_train_timesteps"] = timesteps;
            o["steps_offset"] = 1;
            o["clip_sample"] = false;
            o["set_alpha_to_one"] = false;
            o["prediction_type"] = predictionType;
            if (schedulerType == "pndm") o["skip_prk_steps"] = true;
        }
        return SchedulerFactory.FromJson(o.ToJsonString(), "single-file scheduler config");
    }
}
