using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// UNet2DModel options beyond the golden tiny-ddpm model: class conditioning, centring, fourier time
/// embedding, scale_shift, resnet up/down samplers, no mid attention, dtype, save/load and load errors.
/// Where possible the tiny-ddpm weights are reused so that a value (not just a shape) is checked.
/// </summary>
public class UNet2DModelOptionsTests
{
    private const string Expected = "tiny-ddpm-expected.safetensors";
    private static string TinyUnetDir => Golden.Path("tiny-ddpm", "unet");

    private static UNet2DModelConfig TinyConfig() =>
        ConfigJson.Read<UNet2DModelConfig>(Path.Combine(TinyUnetDir, "config.json"));

    private static UNet2DModel TinyWith(UNet2DModelConfig config, Dictionary<string, Tensor>? extra = null)
    {
        var model = UNet2DModel.FromConfig(config);
        var w = WeightLoader.ReadFolder(TinyUnetDir);
        if (extra is not null) foreach (var (k, v) in extra) w[k] = v;
        WeightLoader.LoadInto(model, w, TinyUnetDir);
        model.eval();
        return model;
    }

    private static HashSet<string> Names(nn.Module m) => m.named_parameters().Select(p => p.name).ToHashSet();

    private static Tensor FourierWeight(nn.Module m) => m.named_parameters().First(p => p.name == "time_proj.weight").parameter;

    private static long[] Shape(nn.Module m, string name) => m.named_parameters().First(p => p.name == name).parameter.shape;

    [Fact]
    public void IdentityClassEmbeddingWithZeroLabelsMatchesTheUnconditionedModel()
    {
        using var _ = torch.no_grad();
        using var unet = TinyWith(TinyConfig() with { ClassEmbedType = "identity" });
        using var x = Golden.Tensor(Expected, "unet/x");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var zeros = torch.zeros(1, 64);
        using var y = unet.Forward(x, 500L, zeros).Sample;
        Tol.Close(y, expected, Tol.ModelAbs, "identity class embedding, zero labels");
        using var ones = torch.ones(1, 64);
        using var y1 = unet.Forward(x, 500L, ones).Sample;
        Assert.True(Tol.MaxAbsDiff(y1, expected) > 1e-3, "class labels must change the output");
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 500L));
        Assert.Contains("class_labels should be provided", e.Message);
    }

    [Fact]
    public void ClassEmbeddingTableIsAddedToTheTimeEmbedding()
    {
        using var _ = torch.no_grad();
        using var table = torch.zeros(10, 64);
        table[3] = torch.full(64, 0.5f);
        using var unet = TinyWith(TinyConfig() with { NumClassEmbeds = 10 }, new() { ["class_embedding.weight"] = table });
        Assert.Equal(new long[] { 10, 64 }, Shape(unet, "class_embedding.weight"));
        using var x = Golden.Tensor(Expected, "unet/x");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var label0 = torch.tensor(new long[] { 0 });
        using var y0 = unet.Forward(x, 500L, label0).Sample;
        Tol.Close(y0, expected, Tol.ModelAbs, "class 0 (zero embedding row)");
        // Class 3 adds 0.5 to every time-embedding channel: same as the identity embedding fed 0.5.
        using var label3 = torch.tensor(new long[] { 3 });
        using var y3 = unet.Forward(x, 500L, label3).Sample;
        using var ident = TinyWith(TinyConfig() with { ClassEmbedType = "identity" });
        using var half = torch.full(1, 64, 0.5f);
        using var yIdent = ident.Forward(x, 500L, half).Sample;
        Tol.Close(y3, yIdent, 1e-6, "class 3 vs identity(0.5)");
        Assert.True(Tol.MaxAbsDiff(y3, expected) > 1e-3);
    }

    [Fact]
    public void TimestepClassEmbeddingHasItsOwnMlp()
    {
        using var unet = UNet2DModel.FromConfig(TinyConfig() with { ClassEmbedType = "timestep" });
        Assert.Equal(new long[] { 64, 16 }, Shape(unet, "class_embedding.linear_1.weight"));
        Assert.Equal(new long[] { 64, 64 }, Shape(unet, "class_embedding.linear_2.weight"));
        using var _ = torch.no_grad();
        using var x = torch.randn(2, 3, 32, 32);
        using var labels = torch.tensor(new long[] { 5, 900 });
        using var y = unet.Forward(x, 10L, labels).Sample;
        Assert.Equal(new long[] { 2, 3, 32, 32 }, y.shape);
    }

    [Fact]
    public void ClassLabelsWithoutAClassEmbeddingAreRefused()
    {
        using var _ = torch.no_grad();
        using var unet = TinyWith(TinyConfig());
        using var x = Golden.Tensor(Expected, "unet/x");
        using var labels = torch.tensor(new long[] { 1 });
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 500L, labels));
        Assert.Contains("class_embedding needs to be initialized", e.Message);
    }

    [Fact]
    public void CenterInputSampleMapsZeroOneToMinusOneOne()
    {
        using var _ = torch.no_grad();
        using var unet = TinyWith(TinyConfig() with { CenterInputSample = true });
        using var x = Golden.Tensor(Expected, "unet/x");
        using var x01 = (x + 1) / 2;
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var y = unet.Forward(x01, 500L).Sample;
        Tol.Close(y, expected, Tol.ModelAbs, "center_input_sample");
    }

    [Fact]
    public void FourierTimeEmbeddingUsesLogTimeAndDividesByT()
    {
        var cfg = TinyConfig() with { TimeEmbeddingType = "fourier" };
        using var unet = UNet2DModel.FromConfig(cfg);
        Assert.Equal(new long[] { 16 }, Shape(unet, "time_proj.weight"));
        Assert.Equal(new long[] { 64, 32 }, Shape(unet, "time_embedding.linear_1.weight"));

        // diffusers' state dicts hold the projection twice (time_proj.weight and its alias time_proj.W):
        // saving writes both, loading accepts both or either.
        using (var dir = new TempDir())
        {
            unet.SavePretrained(dir.Path);
            using (var st = SafetensorsFile.Open(dir.File("diffusion_pytorch_model.safetensors")))
            {
                Assert.Contains("time_proj.W", st.Keys);
                Assert.Contains("time_proj.weight", st.Keys);
            }
            using var back = UNet2DModel.FromPretrained(dir.Path);
            Assert.Equal(0.0, Tol.MaxAbsDiff(FourierWeight(back), FourierWeight(unet)));
            var onlyW = WeightLoader.ReadFolder(dir.Path);
            onlyW.Remove("time_proj.weight");
            using var fromW = UNet2DModel.FromConfig(cfg);
            fromW.MergeStateDictAliases(onlyW);
            WeightLoader.LoadInto(fromW, onlyW, dir.Path);
            Assert.Equal(0.0, Tol.MaxAbsDiff(FourierWeight(fromW), FourierWeight(unet)));
        }

        // The projection itself: [sin(2π ln(t) w), cos(2π ln(t) w)].
        var proj = new GaussianFourierProjection(embeddingSize: 4, scale: 16);
        var wv = new[] { 0.5f, -1.25f, 3.0f, 10.0f };
        using (torch.no_grad()) proj.Weight.copy_(torch.tensor(wv));
        using var t = torch.tensor(new[] { 7.0f });
        using var e = proj.Forward(t);
        var ev = e.data<float>().ToArray();
        for (int i = 0; i < 4; i++)
        {
            // the argument rounded as float32 in the same order as diffusers: ((ln t * w) * 2) * pi
            float arg = MathF.Log(7f) * wv[i] * 2f * (float)Math.PI;
            Assert.True(Math.Abs(Math.Sin(arg) - ev[i]) < 2e-5, $"sin {i}: {ev[i]} vs {Math.Sin(arg)}");
            Assert.True(Math.Abs(Math.Cos(arg) - ev[4 + i]) < 2e-5, $"cos {i}: {ev[4 + i]} vs {Math.Cos(arg)}");
        }

        using var _ = torch.no_grad();
        using var x = torch.randn(1, 3, 32, 32);
        using var y = unet.Forward(x, torch.tensor(new[] { 0.5f })).Sample;
        Assert.Equal(new long[] { 1, 3, 32, 32 }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void ScaleShiftDoublesTheTimeProjectionAndDropsTheMidAttentionNorm()
    {
        using var unet = UNet2DModel.FromConfig(TinyConfig() with { ResnetTimeScaleShift = "scale_shift" });
        Assert.Equal(new long[] { 32, 64 }, Shape(unet, "down_blocks.0.resnets.0.time_emb_proj.weight"));
        var names = Names(unet);
        Assert.DoesNotContain("mid_block.attentions.0.group_norm.weight", names);
        Assert.Contains("down_blocks.1.attentions.0.group_norm.weight", names);
        using var withGroups = UNet2DModel.FromConfig(TinyConfig() with { ResnetTimeScaleShift = "scale_shift", AttnNormNumGroups = 4 });
        Assert.Contains("mid_block.attentions.0.group_norm.weight", Names(withGroups));
        using var _ = torch.no_grad();
        using var x = torch.randn(1, 3, 32, 32);
        using var y = unet.Forward(x, 3L).Sample;
        Assert.Equal(new long[] { 1, 3, 32, 32 }, y.shape);
    }

    [Fact]
    public void ResnetSamplersAndResnetBlocksBuildWithDiffusersNames()
    {
        var cfg = TinyConfig() with
        {
            DownBlockTypes = ["ResnetDownsampleBlock2D", "AttnDownBlock2D", "DownBlock2D"],
            UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D"],
            BlockOutChannels = [16, 32, 32],
            DownsampleType = "resnet",
            UpsampleType = "resnet",
            AddAttention = false,
        };
        using var unet = UNet2DModel.FromConfig(cfg);
        var names = Names(unet);
        Assert.Contains("down_blocks.0.downsamplers.0.conv1.weight", names);
        Assert.Contains("down_blocks.1.downsamplers.0.time_emb_proj.weight", names);
        Assert.Contains("down_blocks.2.resnets.1.conv2.weight", names);
        Assert.Contains("up_blocks.1.upsamplers.0.norm2.weight", names);
        Assert.Contains("up_blocks.0.upsamplers.0.conv.weight", names);
        Assert.DoesNotContain("up_blocks.2.upsamplers.0.conv1.weight", names);
        Assert.DoesNotContain(names, n => n.StartsWith("mid_block.attentions", StringComparison.Ordinal));
        Assert.Equal(new long[] { 32, 64, 1, 1 }, Shape(unet, "up_blocks.0.resnets.0.conv_shortcut.weight"));
        using var _ = torch.no_grad();
        using var x = torch.randn(2, 3, 32, 32);
        using var y = unet.Forward(x, torch.tensor(new long[] { 1, 2 })).Sample;
        Assert.Equal(new long[] { 2, 3, 32, 32 }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void Bfloat16ModelStaysCloseToFloat32()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet", new() { Dtype = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, unet.DType);
        using var x = Golden.Tensor(Expected, "unet/x");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var y = unet.Forward(x.to(ScalarType.BFloat16), 500L).Sample;
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        double scale = expected.abs().max().item<float>();
        double diff = Tol.MaxAbsDiff(y.to(ScalarType.Float32), expected);
        Assert.True(diff < 0.05 * scale, $"bf16 vs fp32 max diff {diff} (output scale {scale})");
    }

    [Fact]
    public void SavePretrainedRoundTripsExactly()
    {
        using var _ = torch.no_grad();
        using var dir = new TempDir();
        using var unet = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), subfolder: "unet");
        unet.SavePretrained(dir.Path);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("config.json")));
        Assert.Equal("UNet2DModel", json.RootElement.GetProperty("_class_name").GetString());
        Assert.Equal(8, json.RootElement.GetProperty("attention_head_dim").GetInt32());
        using (var st = SafetensorsFile.Open(dir.File("diffusion_pytorch_model.safetensors")))
        using (var orig = SafetensorsFile.Open(Path.Combine(TinyUnetDir, "diffusion_pytorch_model.safetensors")))
            Assert.Equal(orig.Keys.OrderBy(n => n, StringComparer.Ordinal),
                st.Keys.OrderBy(n => n, StringComparer.Ordinal));
        using var back = UNet2DModel.FromPretrained(dir.Path);
        using var x = Golden.Tensor(Expected, "unet/x");
        using var a = unet.Forward(x, 7L).Sample;
        using var b = back.Forward(x, 7L).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
    }

    [Fact]
    public void LoadErrorsNameTheProblem()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<DiffusersException>(() => UNet2DModel.FromPretrained(dir.File("nope")));
        Assert.Equal($"'{dir.File("nope")}' is neither an existing folder nor a valid Hugging Face Hub id "
                     + "('name' or 'org/name': letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters)", missing.Message);

        File.WriteAllText(dir.File("config.json"), """{"_class_name": "AutoencoderKL"}""");
        var wrong = Assert.Throws<ConfigException>(() => UNet2DModel.FromPretrained(dir.Path));
        Assert.Equal("_class_name", wrong.Key);
        Assert.Equal($"{dir.File("config.json")}: config key '_class_name' is 'AutoencoderKL', expected 'UNet2DModel'", wrong.Message);

        File.Copy(Path.Combine(TinyUnetDir, "config.json"), dir.File("config.json"), overwrite: true);
        var noWeights = Assert.Throws<WeightsException>(() => UNet2DModel.FromPretrained(dir.Path));
        Assert.Equal($"No weights found in {dir.Path}: looked for diffusion_pytorch_model.safetensors, diffusion_pytorch_model.safetensors.index.json, "
                     + "diffusion_pytorch_model.bin, diffusion_pytorch_model.bin.index.json", noWeights.Message);
    }

    [Fact]
    public void ModelIsInEvalModeAfterLoading()
    {
        using var unet = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), subfolder: "unet");
        Assert.False(unet.training);
    }
}
