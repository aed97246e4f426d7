using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Bench;

/// <summary>
/// The end-to-end benchmark's view of a text-to-image pipeline: loaded from a folder component by component (so the weights
/// it holds are counted), the prompt encoded on its own (a stage of its own), then the pipeline's own loop and decode.
/// </summary>
public abstract class E2ePipeline : IDisposable
{
    /// <summary>Bytes of the parameters of every model it holds.</summary>
    public long WeightBytes { get; protected init; }

    /// <summary>The pipeline's UNet.</summary>
    protected abstract UNet2DConditionModel Unet { get; }

    /// <summary>The pipeline's decoder.</summary>
    protected abstract IVae Vae { get; }

    /// <summary>The decoder's class name.</summary>
    public string VaeName => Vae.ClassName;

    /// <summary>Tokenizer + text encoder(s); true <paramref name="cfg"/> encodes the negative prompt too.</summary>
    public abstract IDisposable Encode(string prompt, bool cfg);

    /// <summary>The pipeline's loop and decode (PIL output) with the embeddings of <see cref="Encode"/>.</summary>
    public abstract Image Generate(IDisposable embeddings, E2eConfigs.Scenario s, int size, IProgress<PipelineProgress> progress);

    /// <summary>Whether the run builds the classifier-free-guidance batch (not for guidance ≤ 1 or an LCM UNet's embedded w).</summary>
    public bool Cfg(E2eConfigs.Scenario s) => s.Guidance > 1 && Unet.Config.TimeCondProjDim is null;

    /// <inheritdoc/>
    public abstract void Dispose();

    /// <summary>Loads the pipeline of <paramref name="s"/>'s family from <paramref name="folder"/> in <paramref name="dtype"/>.</summary>
    public static E2ePipeline Load(string folder, E2eConfigs.Scenario s, ScalarType dtype) =>
        s.Family == "sdxl" ? new Sdxl(folder, s, dtype) : new Sd(folder, s, dtype);

    private static long Bytes(IEnumerable<object> held) =>
        held.OfType<nn.Module>().Sum(m => m.parameters().Sum(p => p.numel() * p.element_size()));

    private static IVae LoadVae(string folder, E2eConfigs.Scenario s, LoadOptions options) =>
        VaeLoader.FromPretrained(Path.Combine(folder, s.Taesd ? "taesd" : "vae"), options);

    private sealed class Sd : E2ePipeline
    {
        private readonly StableDiffusionPipeline _pipe;

        public Sd(string folder, E2eConfigs.Scenario s, ScalarType dtype)
        {
            var options = new LoadOptions { Dtype = dtype };
            var text = CLIPTextModel.FromPretrained(folder, "text_encoder", options with { Dtype = StableDiffusionPipelineBase.TextEncoderDtype(dtype) });
            var unet = UNet2DConditionModel.FromPretrained(folder, "unet", options);
            var vae = LoadVae(folder, s, options);
            _pipe = new StableDiffusionPipeline(vae, text, CLIPTokenizer.FromPretrained(folder, "tokenizer"), unet,
                SchedulerFactory.FromPretrained(folder, "scheduler"), _ => { });
            WeightBytes = Bytes([text, unet, vae]);
        }

        protected override UNet2DConditionModel Unet => _pipe.Unet;

        protected override IVae Vae => _pipe.Vae;

        public override IDisposable Encode(string prompt, bool cfg) => _pipe.EncodePrompt(prompt, 1, cfg);

        public override Image Generate(IDisposable embeddings, E2eConfigs.Scenario s, int size, IProgress<PipelineProgress> progress)
        {
            var e = (PromptEmbeddings)embeddings;
            using var output = _pipe.Generate(promptEmbeds: e.PromptEmbeds, negativePromptEmbeds: e.NegativePromptEmbeds,
                guidanceScale: s.Guidance, height: size, width: size, numInferenceSteps: s.Steps, seed: 0, progress: progress);
            return output.Images[0];
        }

        public override void Dispose() => _pipe.Dispose();
    }

    private sealed class Sdxl : E2ePipeline
    {
        private readonly StableDiffusionXLPipeline _pipe;

        public Sdxl(string folder, E2eConfigs.Scenario s, ScalarType dtype)
        {
            var options = new LoadOptions { Dtype = dtype };
            var textOptions = options with { Dtype = StableDiffusionPipelineBase.TextEncoderDtype(dtype) };
            var text = CLIPTextModel.FromPretrained(folder, "text_encoder", textOptions);
            var text2 = CLIPTextModelWithProjection.FromPretrained(folder, "text_encoder_2", textOptions);
            var unet = UNet2DConditionModel.FromPretrained(folder, "unet", options);
            var vae = LoadVae(folder, s, options);
            _pipe = new StableDiffusionXLPipeline(vae, text, CLIPTokenizer.FromPretrained(folder, "tokenizer"), text2,
                CLIPTokenizer.FromPretrained(folder, "tokenizer_2"), unet, SchedulerFactory.FromPretrained(folder, "scheduler"), log: _ => { });
            WeightBytes = Bytes([text, text2, unet, vae]);
        }

        protected override UNet2DConditionModel Unet => _pipe.Unet;

        protected override IVae Vae => _pipe.Vae;

        public override IDisposable Encode(string prompt, bool cfg) => _pipe.EncodePrompt(prompt, doClassifierFreeGuidance: cfg);

        public override Image Generate(IDisposable embeddings, E2eConfigs.Scenario s, int size, IProgress<PipelineProgress> progress)
        {
            var e = (StableDiffusionXLPromptEmbeddings)embeddings;
            using var output = _pipe.Generate(promptEmbeds: e.PromptEmbeds, negativePromptEmbeds: e.NegativePromptEmbeds,
                pooledPromptEmbeds: e.PooledPromptEmbeds, negativePooledPromptEmbeds: e.NegativePooledPromptEmbeds,
                guidanceScale: s.Guidance, height: size, width: size, numInferenceSteps: s.Steps, seed: 0, progress: progress);
            return output.Images[0];
        }

        public override void Dispose() => _pipe.Dispose();
    }
}
