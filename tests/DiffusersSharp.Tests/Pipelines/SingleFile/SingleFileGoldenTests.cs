using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// Golden README section K: the tiny SD 1.5-layout model written by diffusers' own conversion script (float16), its
/// YAML, the full 978-key mapping found by diffusers' <c>from_single_file</c>, and a PNDM run of the loaded pipeline.
/// </summary>
public class SingleFileGoldenTests(ITestOutputHelper log)
{
    internal const string Expected = "single-file-expected.safetensors";
    private const double Trajectory = 1e-4;
    internal static string File => Golden.Path("single-file", "tiny-sd15-layout.safetensors");
    internal static string Yaml => Golden.Path("single-file", "tiny-sd15-layout.yaml");
    internal static string Folder => Golden.Path("single-file", "tiny-sd15-layout");

    /// <summary>What the golden run passes to from_single_file besides the file: the YAML, image_size 64, tokenizer and text encoder.</summary>
    internal static SingleFileOptions GoldenOptions() => new()
    {
        OriginalConfigFile = Yaml,
        ImageSize = 64,
        Tokenizer = CLIPTokenizer.FromPretrained(Folder, "tokenizer"),
        TextEncoder = new CLIPTextModel(ConfigJson.Read<CLIPTextConfig>(Path.Combine(Folder, "text_encoder", "config.json"))),
    };

    [Fact]
    public void EveryOneOfThe978KeysMapsAsDiffusersMapsIt()
    {
        using var doc = Golden.Json("single-file-expected.json");
        var expected = doc.RootElement.GetProperty("key_mapping").EnumerateArray().ToList();
        Assert.Equal(978, expected.Count);
        var options = GoldenOptions();
        using var _ = options.TextEncoder;
        using var ckpt = OriginalCheckpoint.Open(File);
        var layout = SingleFileLayout.Resolve(ckpt, options);
        var assigned = layout.Assign(ckpt);
        var maps = layout.KeyMaps.ToDictionary(m => m.Component);
        int matched = 0;
        foreach (var e in expected)
        {
            string original = e.GetProperty("original").GetString()!;
            string component = e.GetProperty("component").GetString()!;
            var map = maps[component];
            Assert.Contains(original, assigned[map]);
            var m = map.FromOriginal(original);
            Assert.NotNull(m);
            Assert.Equal([e.GetProperty("diffusers").GetString()!], m!.Diffusers);
            bool reshape = e.TryGetProperty("transform", out var tr) && tr.GetString() == "reshape";
            Assert.Equal(reshape ? TensorChange.Conv1x1ToLinear : TensorChange.None, m.Change);
            var shapes = map.ShapesToDiffusers(new Dictionary<string, long[]> { [original] = ckpt.Shape(original)! }, File);
            Assert.Equal(e.GetProperty("diffusers_shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(), shapes[m.Diffusers[0]]);
            Assert.Equal(original, map.FromDiffusers(m.Diffusers[0])!.Original);
            matched++;
        }
        Assert.Equal(978, matched);
        Assert.Equal(978, assigned.Values.Sum(v => v.Count));
        log.WriteLine($"978/978 keys: unet {assigned[layout.UnetKeys].Count}, vae {assigned[layout.VaeKeys].Count}, text_encoder {assigned[layout.TextEncoders[0].Keys].Count}");
    }

    [Fact]
    public void ConfigsAreTheFoldersOnes()
    {
        var options = GoldenOptions();
        using var _ = options.TextEncoder;
        using var ckpt = OriginalCheckpoint.Open(File);
        var layout = SingleFileLayout.Resolve(ckpt, options);
        Assert.Equal(StableDiffusionFamily.StableDiffusion1, layout.Family);
        Assert.Equal(StableDiffusionPipeline.Name, layout.PipelineClassName);
        var unet = ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(Folder, "unet", "config.json"));
        var vae = ConfigJson.Read<AutoencoderKLConfig>(Path.Combine(Folder, "vae", "config.json"));
        // The golden run's only config difference: upcast_attention null (single file) vs false (folder); no Extra keys here.
        Assert.Equal(ConfigJson.Serialize(unet with { ClassName = null, DiffusersVersion = null }), ConfigJson.Serialize(layout.Unet));
        Assert.Equal(ConfigJson.Serialize(vae with { ClassName = null, DiffusersVersion = null }), ConfigJson.Serialize(layout.Vae));
        var scheduler = Assert.IsType<PNDMScheduler>(layout.Scheduler);
        var folderScheduler = (PNDMSchedulerConfig)SchedulerFactory.ReadConfigFile(Folder);
        var c = (PNDMSchedulerConfig)scheduler.Config;
        Assert.Equal(folderScheduler with { ClassName = null, DiffusersVersion = null, DefaultedKeys = [], Extra = null },
            c with { ClassName = null, DiffusersVersion = null, DefaultedKeys = [], Extra = null });
        using var folderBetas = SchedulerFactory.FromConfig(folderScheduler).Betas;
        Assert.True(Same(folderBetas, scheduler.Betas));
    }

    [Fact]
    public void LoadedWeightsAreTheFoldersRoundedToFloat16()
    {
        using var pipe = StableDiffusionPipeline.FromSingleFile(File, GoldenOptions());
        foreach (var (name, module, weightsName) in new (string, nn.Module, string)[]
                 { ("unet", pipe.Unet, "diffusion_pytorch_model"), ("vae", (nn.Module)pipe.Vae, "diffusion_pytorch_model"), ("text_encoder", pipe.TextEncoder, "model") })
        {
            var folder = WeightLoader.ReadFolder(Path.Combine(Folder, name), weightsName);
            try
            {
                var loaded = module.state_dict();
                Assert.Equal(folder.Keys.Order(StringComparer.Ordinal), loaded.Keys.Order(StringComparer.Ordinal));
                foreach (var (k, w) in folder)
                {
                    using var rounded = w.to(ScalarType.Float16).to(ScalarType.Float32);
                    Assert.True(Same(rounded, loaded[k]), $"{name}.{k} differs from the folder's weight rounded to float16");
                }
            }
            finally
            {
                foreach (var t in folder.Values) t.Dispose();
            }
        }
    }

    [Fact]
    public void PipelineRunMatchesFromSingleFile()
    {
        using var pipe = StableDiffusionPipeline.FromSingleFile(File, GoldenOptions());
        Assert.IsType<PNDMScheduler>(pipe.Scheduler);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 2, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        const string p = "pipeline/single_file/";
        SdTrace.Check(log, g, p + "latent_noise", trace.One("initial_latents"), Tol.ModelAbs);
        using (var states = torch.cat(new[] { trace.One("negative_prompt_embeds"), trace.One("prompt_embeds") }))
            SdTrace.Check(log, g, p + "unet_encoder_hidden_states", states, Tol.ModelAbs);
        using (var ts = g.Load(p + "unet_timestep").to(ScalarType.Float64))
        using (var ours = pipe.Scheduler.Timesteps.to(ScalarType.Float64))
            Assert.Equal(new double[] { 501, 1, 1 }, ts.data<double>().ToArray());
        // The loop itself (float32 rounding differences grow over the steps, as in the tiny-sd runs: 1e-4) ...
        using (var inputs = trace.Stacked("unet_input")) SdTrace.Check(log, g, p + "unet_input", inputs, Trajectory);
        using (var outputs = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", outputs, Trajectory);
        using (var after = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", after, Trajectory);
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), Trajectory);
        // ... and each model call from diffusers' recorded input within 1e-5.
        using (var noGrad = torch.no_grad())
        using (var inputs = g.Load(p + "unet_input"))
        using (var ts = g.Load(p + "unet_timestep"))
        using (var outputs = g.Load(p + "unet_output"))
        using (var states = g.Load(p + "unet_encoder_hidden_states"))
        {
            for (int i = 0; i < inputs.shape[0]; i++)
            {
                using var scope = torch.NewDisposeScope();
                Tol.Close(pipe.Unet.Forward(inputs[i], ts[i], states).Sample, outputs[i], Tol.ModelAbs, $"unet call {i} from the recorded input");
            }
            using var last = g.Load(p + "latents_after_step");
            using var vaeDecoded = g.Load(p + "vae_decoded");
            using var scope2 = torch.NewDisposeScope();
            Tol.Close(pipe.Vae.Decode(last[-1] / pipe.Vae.ScalingFactor).Sample, vaeDecoded, Tol.ModelAbs, "vae decode of the recorded latents");
        }
        using var images = g.Load(p + "images");
        using var within = ((result.Array! - images).abs() <= 1.0 / 255).all();
        log.WriteLine($"images: max abs error {Tol.MaxAbsDiff(result.Array!, images):E3}");
        Assert.True(within.item<bool>(), "not every image value is within 1/255 of diffusers'");
    }

    internal static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using var eq = a.eq(b).all();
        return eq.item<bool>();
    }

    /// <summary>Two safetensors files hold the same keys, dtypes, shapes and values.</summary>
    internal static void SameFile(string expected, string actual)
    {
        using var a = SafetensorsFile.Open(actual);
        using var e = SafetensorsFile.Open(expected);
        Assert.Equal(e.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
        foreach (var key in e.Keys)
        {
            using var x = a.Load(key);
            using var y = e.Load(key);
            Assert.True(Same(x, y), $"{key} differs between {expected} and {actual}");
        }
    }
}
