using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>LDMPipeline</c> (pipelines/deprecated/latent_diffusion_uncond, v0.25.1): unconditional latent diffusion,
/// e.g. <c>CompVis/ldm-celebahq-256</c>. The <see cref="UnconditionalImagePipeline"/> loop runs on latents of the UNet's
/// <c>sample_size</c> (noise × <c>init_noise_sigma</c>, <c>scale_model_input</c>, <c>step</c> with <c>eta</c>), then the
/// latents are divided by the VQ-VAE's <c>scaling_factor</c>, decoded (<see cref="VQModel.Decode"/>, quantized first) and
/// mapped to <c>(x / 2 + 0.5).clamp(0, 1)</c>.
/// <code>
/// using var pipe = LDMPipeline.FromPretrained("CompVis/ldm-celebahq-256");
/// using var result = pipe.Generate(numInferenceSteps: 200, seed: 0);
/// result.Images[0].Save("face.png");
/// </code>
/// diffusers' pipeline passes its generator to the initial noise only; the scheduler's noise (DDIM with eta &gt; 0) comes
/// from torch's global generator, which is the same stream when the generator is <c>torch.manual_seed(seed)</c>: a seed
/// here draws both from one generator, so it gives diffusers' numbers for <c>generator=torch.manual_seed(seed)</c>.
/// </summary>
public sealed class LDMPipeline : UnconditionalImagePipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "LDMPipeline";

    /// <summary>
    /// A pipeline of <paramref name="vqvae"/>, <paramref name="unet"/> and <paramref name="scheduler"/> (diffusers' is a
    /// DDIMScheduler; any is taken, as there); the pipeline owns them. The UNet's channels must be the VQ-VAE's codebook
    /// vectors' (<c>vq_embed_dim</c>): its latents are what the VQ-VAE quantizes.
    /// </summary>
    public LDMPipeline(VQModel vqvae, UNet2DModel unet, IScheduler scheduler) : base(unet, scheduler)
    {
        ArgumentNullException.ThrowIfNull(vqvae);
        Vqvae = vqvae;
        vqvae.eval();
        CheckChannels(Name, vqvae, unet.Config.InChannels, unet.Config.OutChannels);
    }

    /// <summary>The VQ-VAE that decodes the latents.</summary>
    public VQModel Vqvae { get; }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <inheritdoc/>
    public override int DefaultNumInferenceSteps => 50;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object>(base.Components) { ["vqvae"] = Vqvae };

    /// <summary>
    /// The latents the UNet makes are decoded by the VQ-VAE: <paramref name="latentChannels"/> (the UNet's latent input
    /// channels) and <paramref name="outChannels"/> (its prediction's) must both be <c>vq_embed_dim</c> (diffusers fails in
    /// the scheduler step or the quantizer's reshape otherwise).
    /// </summary>
    internal static void CheckChannels(string pipeline, VQModel vqvae, int latentChannels, int outChannels)
    {
        int dim = vqvae.Config.EffectiveVqEmbedDim;
        if (latentChannels != dim || outChannels != dim)
            throw new ConfigException(
                $"{pipeline}: the UNet's latents have {latentChannels} channels and its prediction {outChannels}, but the VQ-VAE decodes latents of " +
                $"vq_embed_dim {dim} channels (its codebook vectors): the UNet does not belong to this VQ-VAE")
            { Key = "in_channels" };
    }

    /// <summary>
    /// Loads <c>vqvae/</c> (<see cref="VQModel"/>), <c>unet/</c> and <c>scheduler/</c> of an LDMPipeline folder or Hub id,
    /// every component with <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings).
    /// </summary>
    public static new LDMPipeline FromPretrained(string idOrPath, LoadOptions? options = null)
    {
        string folder = PipelinePaths.Resolve(idOrPath, options);
        CheckClass(folder, Name);
        return LatentDiffusionFolder.Load(folder, options, (vqvae, unet, scheduler) => new LDMPipeline(vqvae, unet, scheduler));
    }

    /// <summary>
    /// Generates <paramref name="batchSize"/> images (diffusers' <c>__call__</c>, default 50 steps). <paramref name="eta"/>
    /// goes to the scheduler's step (DDIM: 0 deterministic, 1 DDPM-like; ignored by schedulers without it). Pass a
    /// <paramref name="seed"/> or a <paramref name="generator"/>: the initial noise and then the scheduler's noise are drawn
    /// from it. <paramref name="latents"/>, when given, replaces the initial noise draw; <paramref name="callbackOnStepEnd"/>
    /// sees (and may replace) the latents after every step.
    /// </summary>
    public ImagePipelineOutput Generate(int batchSize = 1, int numInferenceSteps = 50, double eta = 0.0, long? seed = null,
        Generator? generator = null, OutputType outputType = OutputType.Pil, Tensor? latents = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        StepEndCallback? callbackOnStepEnd = null)
    {
        if (double.IsNaN(eta) || eta < 0)
            throw new DiffusersException($"{Name}: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got {eta}");
        return Run(batchSize, numInferenceSteps, seed, generator, latents, outputType, new StepOptions { Eta = eta }, progress,
            cancellationToken, callbackOnStepEnd);
    }

    /// <summary><c>vqvae.decode(latents / scaling_factor).sample</c>, quantized as diffusers' <c>decode</c> does by default.</summary>
    protected override Tensor LatentsToImage(Tensor latents)
    {
        using var scaled = latents / Vqvae.ScalingFactor;
        return Vqvae.Decode(scaled.to(Vqvae.DType)).Sample;
    }
}
