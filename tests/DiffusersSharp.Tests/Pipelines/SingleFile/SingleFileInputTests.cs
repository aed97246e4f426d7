using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Tests.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// What a single file can be: a <c>.ckpt</c> (through the allow-listed unpickler, <c>state_dict</c> unwrapped, <c>global_step</c>
/// read), an inpainting model, an SDXL file handed to an SD pipeline; and bad input: a LoRA, an embedding, a VAE, a diffusers
/// model, a truncated file, unknown or missing keys, an unsupported family. Each error names the file and the key.
/// </summary>
public class SingleFileInputTests
{
    private static string GoldenFile => SingleFileGoldenTests.File;

    /// <summary>Writes <paramref name="tensors"/> as a torch.save zip of <c>{"state_dict": OrderedDict, "global_step": step}</c>.</summary>
    internal static void WriteCkpt(string path, IReadOnlyDictionary<string, Tensor> tensors, int globalStep)
    {
        var p = new PickleBuilder();
        p.Op('}').Mark().Str("state_dict");
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        var storages = new Dictionary<string, byte[]>();
        foreach (var (name, t) in tensors)
        {
            string key = storages.Count.ToString();
            using var c = t.contiguous();
            storages[key] = c.bytes.ToArray();
            var shape = t.shape.Select(s => (int)s).ToArray();
            var stride = new int[shape.Length];
            for (int i = shape.Length - 1, s = 1; i >= 0; s *= shape[i], i--) stride[i] = s;
            string type = t.dtype == ScalarType.Float16 ? "HalfStorage" : "FloatStorage";
            p.Str(name).Tensor(type, key, (int)t.numel(), 0, shape, stride);
        }
        p.Op('u');
        p.Str("global_step").Int(globalStep).Op('u');
        PickleBuilder.WriteZip(path, p.Stop(), storages);
    }

    private static Dictionary<string, Tensor> GoldenTensors() => WeightLoader.ReadFile(GoldenFile);

    /// <summary>The golden file with <paramref name="edit"/> applied to its tensors, written as safetensors.</summary>
    private static string Edited(TempDir dir, Action<Dictionary<string, Tensor>> edit)
    {
        var t = GoldenTensors();
        edit(t);
        string path = dir.File("edited.safetensors");
        SafetensorsFile.Save(path, t);
        foreach (var v in t.Values) v.Dispose();
        return path;
    }

    private static T Throws<T>(Func<object> load, string path, string key, params string[] parts) where T : DiffusersException
    {
        var e = Assert.Throws<T>(() => { using var _ = load() as IDisposable; });
        Assert.Contains(path, e.Message);
        Assert.Contains(key, e.Message);
        Assert.Equal(key, e.Key);
        foreach (var part in parts) Assert.Contains(part, e.Message);
        return e;
    }

    [Fact]
    public void CkptLoadsLikeTheSafetensorsFileAndKeepsItsGlobalStep()
    {
        using var dir = new TempDir();
        string ckpt = dir.File("model.ckpt");
        var tensors = GoldenTensors();
        WriteCkpt(ckpt, tensors, 875000);
        foreach (var t in tensors.Values) t.Dispose();
        using (var c = OriginalCheckpoint.Open(ckpt))
        {
            Assert.Equal(875000, c.GlobalStep);
            Assert.Equal(978, c.Shapes.Count);
        }
        using var a = StableDiffusionPipeline.FromSingleFile(ckpt, SingleFileGoldenTests.GoldenOptions());
        using var b = StableDiffusionPipeline.FromSingleFile(GoldenFile, SingleFileGoldenTests.GoldenOptions());
        var sa = a.Unet.state_dict();
        foreach (var (k, v) in b.Unet.state_dict()) Assert.True(SingleFileGoldenTests.Same(v, sa[k]), k);
    }

    [Fact]
    public void EmaWeightsAreTakenWhenAskedAndTrainingStateIsLeftOut()
    {
        using var dir = new TempDir();
        const string conv = "model.diffusion_model.out.2.bias";
        string file = Edited(dir, t =>
        {
            foreach (var k in t.Keys.Where(k => k.StartsWith("model.diffusion_model.", StringComparison.Ordinal)).ToList())
                t[SingleFileComponents.EmaKey(k)] = torch.full_like(t[k], 0.5);
            t["model_ema.decay"] = torch.tensor(0.9999f);
            t["model_ema.num_updates"] = torch.tensor(10);
            t["alphas_cumprod"] = torch.ones(1000);
        });
        Assert.Equal("model_ema.diffusion_modelout2bias", SingleFileComponents.EmaKey(conv));
        var logged = new List<string>();
        using var plain = StableDiffusionPipeline.FromSingleFile(file, SingleFileGoldenTests.GoldenOptions() with { Log = logged.Add });
        using var ema = StableDiffusionPipeline.FromSingleFile(file, SingleFileGoldenTests.GoldenOptions() with { ExtractEma = true });
        Assert.Contains(logged, m => m.Contains("only the non-EMA weights are used"));
        Assert.True(ema.Unet.state_dict()["conv_out.bias"].eq(0.5).all().item<bool>());
        Assert.False(plain.Unet.state_dict()["conv_out.bias"].eq(0.5).all().item<bool>());
    }

    [Fact]
    public void NotACheckpointSaysWhatTheFileLooksLike()
    {
        using var dir = new TempDir();
        string Write(string name, params (string Key, long[] Shape)[] entries)
        {
            string path = dir.File(name);
            var t = entries.ToDictionary(e => e.Key, e => torch.zeros(e.Shape));
            SafetensorsFile.Save(path, t);
            foreach (var v in t.Values) v.Dispose();
            return path;
        }
        string lora = Write("lora.safetensors", ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [4, 32]),
            ("lora_unet_down_blocks_0_attentions_0_proj_in.alpha", []));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(lora), lora,
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha", "is not a Stable Diffusion checkpoint", "looks like a LoRA");
        string embedding = Write("embedding.safetensors", ("emb_params", [2, 768]));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(embedding), embedding, "emb_params", "textual-inversion embedding");
        string xlEmbedding = Write("xl-embedding.safetensors", ("clip_g", [2, 1280]), ("clip_l", [2, 768]));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(xlEmbedding), xlEmbedding, "clip_g", "textual-inversion embedding");
        string vae = Write("vae.safetensors", ("encoder.conv_in.weight", [128, 3, 3, 3]));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(vae), vae, "encoder.conv_in.weight", "looks like a VAE alone");
        string unet = Golden.Path("tiny-sdxl", "unet", "diffusion_pytorch_model.safetensors");
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(unet), unet, "down_blocks.0.downsamplers.0.conv.bias", "diffusers' layout");
        string controlnet = Write("controlnet.safetensors", ("control_model.input_hint_block.0.weight", [16, 3, 3, 3]));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(controlnet), controlnet, "control_model.input_hint_block.0.weight", "ControlNet");
    }

    [Fact]
    public void TruncatedFilesAreErrorsNamingTheFile()
    {
        using var dir = new TempDir();
        string half = dir.File("truncated.safetensors");
        var bytes = File.ReadAllBytes(GoldenFile);
        File.WriteAllBytes(half, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(half, SingleFileGoldenTests.GoldenOptions()));
        Assert.Contains(half, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.NotNull(e.Key);
        Assert.Contains(e.Key!, e.Message);

        string ckpt = dir.File("truncated.ckpt");
        var t = GoldenTensors();
        WriteCkpt(ckpt, t, 1);
        foreach (var v in t.Values) v.Dispose();
        var zip = File.ReadAllBytes(ckpt);
        File.WriteAllBytes(ckpt, zip[..(zip.Length / 2)]);
        var e2 = Assert.Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(ckpt, SingleFileGoldenTests.GoldenOptions()));
        Assert.Contains(ckpt, e2.Message);
        Assert.Contains("truncated", e2.Message);
    }

    [Fact]
    public void UnknownMissingAndMisshapenKeysAreNamed()
    {
        using var dir = new TempDir();
        string extra = Edited(dir, t => t["model.diffusion_model.input_blocks.1.0.in_layers.9.weight"] = torch.zeros(3));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(extra, SingleFileGoldenTests.GoldenOptions()), extra,
            "model.diffusion_model.input_blocks.1.0.in_layers.9.weight", "unknown unet key");
        string stray = Edited(dir, t => t["cond_stage_model.something_else"] = torch.zeros(3));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(stray, SingleFileGoldenTests.GoldenOptions()), stray,
            "cond_stage_model.something_else", "belong to no component");
        string missing = Edited(dir, t => t.Remove("first_stage_model.decoder.mid.attn_1.q.bias"));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(missing, SingleFileGoldenTests.GoldenOptions()), missing,
            "first_stage_model.decoder.mid.attn_1.q.bias", "missing vae key");
        string wide = Edited(dir, t => t["model.diffusion_model.out.2.bias"] = torch.zeros(5, ScalarType.Float16));
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(wide, SingleFileGoldenTests.GoldenOptions()), wide,
            "model.diffusion_model.out.2.bias", "has shape [5]", "expects [4]");
    }

    [Fact]
    public void UnsupportedFamiliesAndTheWrongPipelineAreRefused()
    {
        using var dir = new TempDir();
        string ldmBert = Edited(dir, t =>
        {
            foreach (var k in t.Keys.Where(k => k.StartsWith("cond_stage_model.", StringComparison.Ordinal)).ToList()) t.Remove(k);
            t["cond_stage_model.transformer.token_emb.weight"] = torch.zeros(8, 4);
        });
        Throws<WeightsException>(() => StableDiffusionPipeline.FromSingleFile(ldmBert), ldmBert,
            "cond_stage_model.transformer.token_emb.weight", "unsupported single-file model family");

        string xl = dir.File("xl.safetensors");
        SingleFileConverter.ToOriginal(Golden.Path("tiny-sdxl"), xl);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromSingleFile(xl));
        Assert.Equal($"{xl} is a StableDiffusionXL checkpoint (for StableDiffusionXLPipeline); StableDiffusionPipeline.FromSingleFile loads Stable Diffusion 1.x and 2.x files", e.Message);

        // The tiny text encoder (32 wide) cannot have its heads inferred: the error says what to pass.
        var te = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromSingleFile(GoldenFile));
        Assert.Contains(GoldenFile, te.Message);
        Assert.Equal("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", te.Key);
        Assert.Contains("pass the text encoder, or a diffusers folder whose configs to use", te.Message);
    }

    [Fact]
    public void InpaintingFilesGoToTheInpaintingPipeline()
    {
        using var dir = new TempDir();
        string folder = dir.File("in"), file = dir.File("inpaint.safetensors");
        SyntheticPipelines.Write(folder, sd2: false, inChannels: 9);
        SingleFileConverter.ToOriginal(folder, file);
        Assert.Equal(StableDiffusionInpaintPipeline.Name, SingleFileConverter.PipelineClassOf(file));
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromSingleFile(file));
        Assert.Equal($"{file} is an inpainting checkpoint (9 UNet input channels, 'model.diffusion_model.input_blocks.0.0.weight'); load it with StableDiffusionInpaintPipeline.FromSingleFile", e.Message);
        using var pipe = StableDiffusionInpaintPipeline.FromSingleFile(file);
        Assert.Equal(9, pipe.Unet.Config.InChannels);
    }

    [Fact]
    public void MissingFilesFoldersAndOtherExtensions()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<WeightsException>(() => OriginalCheckpoint.Open(dir.File("nope.safetensors")));
        Assert.Equal($"Checkpoint file not found: {dir.File("nope.safetensors")}", e.Message);
        e = Assert.Throws<WeightsException>(() => OriginalCheckpoint.Open(dir.Path));
        Assert.Equal($"{dir.Path} is a folder; a single-file checkpoint is one .safetensors or .ckpt file", e.Message);
        File.WriteAllText(dir.File("model.onnx"), "x");
        e = Assert.Throws<WeightsException>(() => OriginalCheckpoint.Open(dir.File("model.onnx")));
        Assert.Equal($"{dir.File("model.onnx")}: unknown checkpoint file type '.onnx' (expected .safetensors, .ckpt, .pt, .pth, .bin)", e.Message);
    }
}
