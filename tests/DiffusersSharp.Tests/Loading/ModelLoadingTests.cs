using System.Text.Json;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>A config for <see cref="TinyNet"/> (its values are not used to build it; they round-trip).</summary>
public sealed record TinyNetConfig : DiffusersConfig
{
    [JsonPropertyName("channels")] public int Channels { get; init; } = 4;
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-6;
}

/// <summary>ModelLoading: FromPretrained / LoadWeights / SaveWeights / SavePretrained, generic over nn.Module.</summary>
public class ModelLoadingTests
{
    private static void Fill(TinyNet net)
    {
        using var _ = torch.no_grad();
        using var g = new Generator(7);
        foreach (var (_, p) in net.named_parameters()) p.copy_(torch.randn(p.shape, generator: g));
        foreach (var (_, b) in net.named_buffers()) b.copy_(torch.randn(b.shape, generator: g));
    }

    private static void AssertSameState(nn.Module expected, nn.Module actual, ScalarType? dtype = null)
    {
        var e = expected.state_dict();
        var a = actual.state_dict();
        Assert.Equal(e.Keys.OrderBy(k => k, StringComparer.Ordinal), a.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (k, v) in e)
        {
            var want = dtype is { } d ? v.to(d) : v;
            Assert.Equal(want.dtype, a[k].dtype);
            Assert.True(want.equal(a[k]).all().item<bool>(), k);
        }
    }

    [Fact]
    public void SaveWeightsThenLoadWeightsRoundTrips()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        Fill(net);
        string path = ModelLoading.SaveWeights(net, dir.Path);
        Assert.Equal(dir.File("diffusion_pytorch_model.safetensors"), path);
        using (var f = SafetensorsFile.Open(path))
        {
            Assert.Equal("pt", f.Metadata["format"]);
            Assert.Equal(TinyNet.Keys.Select(k => k.Name).OrderBy(k => k, StringComparer.Ordinal), f.Keys.OrderBy(k => k, StringComparer.Ordinal));
        }
        using var back = new TinyNet();
        Assert.Equal(path, ModelLoading.LoadWeights(back, dir.Path));
        AssertSameState(net, back);
    }

    [Fact]
    public void SavePretrainedWritesConfigAndWeightsThatFromPretrainedReads()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        Fill(net);
        var extra = JsonDocument.Parse("""{"future_key": [1, "two", null]}""").RootElement.GetProperty("future_key").Clone();
        var config = new TinyNetConfig { ClassName = "Other", DiffusersVersion = "0.1", Channels = 5, Extra = new() { ["future_key"] = extra } };
        string folder = Path.Combine(dir.Path, "pipe", "unet");
        ModelLoading.SavePretrained(net, config, folder);
        Assert.Equal(new[] { "config.json", "diffusion_pytorch_model.safetensors" }, Directory.GetFiles(folder).Select(Path.GetFileName).Order());

        TinyNetConfig? seen = null;
        using var back = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(Path.Combine(dir.Path, "pipe"), "unet", null, c => { seen = c; return new TinyNet(); });
        Assert.NotNull(seen);
        Assert.Equal("TinyNet", seen!.ClassName);
        Assert.Equal("0.25.1", seen.DiffusersVersion);
        Assert.Equal(5, seen.Channels);
        Assert.Equal(1e-6, seen.NormEps);
        Assert.Equal("[1,\"two\",null]", seen.Extra!["future_key"].GetRawText().Replace(" ", "").Replace("\n", ""));
        Assert.False(back.training);
        AssertSameState(net, back);
    }

    [Fact]
    public void TransformersFormatUsesTransformersFileNamesAndNoDiffusersKeys()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        Fill(net);
        ModelLoading.SavePretrained(net, new TinyNetConfig { Channels = 5 }, dir.Path, CheckpointFormat.Transformers);
        Assert.Equal(new[] { "config.json", "model.safetensors" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
        using (var doc = JsonDocument.Parse(File.ReadAllText(dir.File("config.json"))))
        {
            Assert.False(doc.RootElement.TryGetProperty("_class_name", out _));
            Assert.False(doc.RootElement.TryGetProperty("_diffusers_version", out _));
            Assert.Equal(5, doc.RootElement.GetProperty("channels").GetInt32());
            // transformers' save_pretrained stamps the class and the weights' dtype
            Assert.Equal(["TinyNet"], doc.RootElement.GetProperty("architectures").EnumerateArray().Select(a => a.GetString()));
            Assert.Equal("float32", doc.RootElement.GetProperty("torch_dtype").GetString());
        }
        using var back = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet(), CheckpointFormat.Transformers);
        AssertSameState(net, back);

        var e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, new() { Variant = "fp16" },
            _ => new TinyNet(), CheckpointFormat.Transformers));
        Assert.Equal($"No weights found in {dir.Path}: looked for model.fp16.safetensors, model.safetensors.index.fp16.json, pytorch_model.fp16.bin, " +
                     "pytorch_model.bin.index.fp16.json (there is model.safetensors, without the 'fp16' variant: load it with variant null)", e.Message);
    }

    [Fact]
    public void FromPretrainedConvertsToTheRequestedDtype()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        Fill(net);
        ModelLoading.SavePretrained(net, new TinyNetConfig(), dir.Path);
        using var bf = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, new() { Dtype = ScalarType.BFloat16 }, _ => new TinyNet());
        AssertSameState(net, bf, ScalarType.BFloat16);
    }

    [Fact]
    public void VariantIsSavedAndLoadedByName()
    {
        using var dir = new TempDir();
        using var net = new TinyNet();
        Fill(net);
        net.to(ScalarType.Float16);
        ModelLoading.SavePretrained(net, new TinyNetConfig(), dir.Path, variant: "fp16");
        Assert.True(File.Exists(dir.File("diffusion_pytorch_model.fp16.safetensors")));
        using var back = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, new() { Variant = "fp16" }, _ => new TinyNet());
        AssertSameState(net, back, ScalarType.Float32);
        var e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet()));
        Assert.StartsWith($"No weights found in {dir.Path}: looked for diffusion_pytorch_model.safetensors", e.Message);
    }

    [Fact]
    public void WeightsOfAnotherModelAreRefusedNamingTheFile()
    {
        using var dir = new TempDir();
        SafetensorsFile.Save(dir.File("diffusion_pytorch_model.safetensors"), TinyNet.Weights().Where(kv => kv.Key != "scale").ToDictionary());
        File.WriteAllText(dir.File("config.json"), "{}");
        var e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet()));
        Assert.Equal($"{dir.File("diffusion_pytorch_model.safetensors")}: the weights do not match TinyNet: missing keys: scale [3]", e.Message);
    }

    /// <summary>
    /// <paramref name="weights"/> as a torch.save zip (<c>.bin</c>): an OrderedDict of float32 tensors, one storage each.
    /// </summary>
    private static void WriteBin(string path, IReadOnlyDictionary<string, Tensor> weights)
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        var storages = new Dictionary<string, byte[]>();
        foreach (var (name, t) in weights)
        {
            string key = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var f = t.to(ScalarType.Float32).contiguous();
            int[] shape = [.. f.shape.Select(d => (int)d)];
            int[] stride = [.. f.stride().Select(d => (int)d)];
            p.Str(name).Tensor("FloatStorage", key, (int)f.numel(), 0, shape, stride);
            storages[key] = f.bytes.ToArray();
        }
        p.Op('u');
        PickleBuilder.WriteZip(path, p.Stop(), storages);
    }

    [Theory]
    [InlineData("diffusion_pytorch_model.safetensors")]   // streamed
    [InlineData("diffusion_pytorch_model.bin")]           // read whole
    public void TensorsTheModelDoesNotHaveAreLeftOutWithOneWarningNamingTheFile(string name)
    {
        // diffusers 0.25.1's from_pretrained: "Some weights of the model checkpoint were not used", and the rest loads
        using var dir = new TempDir();
        var w = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in TinyNet.Weights())   // legacy attention names, converted as diffusers converts them
            w[k.Replace("attn.to_q.", "attn.query.").Replace("attn.to_out.0.", "attn.proj_attn.")] = v;
        for (int i = 0; i < 10; i++) w[$"extra.{i}"] = torch.full(new long[] { 2, i + 1 }, (float)i);
        string file = dir.File(name);
        if (name.EndsWith(".bin", StringComparison.Ordinal)) WriteBin(file, w);
        else SafetensorsFile.Save(file, w);
        File.WriteAllText(dir.File("config.json"), "{}");
        var log = new List<string>();
        using var net = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, new LoadOptions { Log = log.Add }, _ => new TinyNet());
        Assert.Equal([$"{file}: 10 weight(s) of the file are not in TinyNet and were not loaded: " +
            "extra.0 [2, 1], extra.1 [2, 2], extra.2 [2, 3], extra.3 [2, 4], extra.4 [2, 5], extra.5 [2, 6], extra.6 [2, 7], extra.7 [2, 8], … (10 in all)"], log);
        var expected = TinyNet.Weights();
        foreach (var (k, v) in net.state_dict())
            Assert.True(v.equal(expected[k]).all().item<bool>(), k);
    }

    [Fact]
    public void MissingWeightsAndShapeMismatchesStayErrorsWhatTheFileHoldsBesides()
    {
        using var dir = new TempDir();
        string file = dir.File("diffusion_pytorch_model.safetensors");
        File.WriteAllText(dir.File("config.json"), "{}");
        var log = new List<string>();
        var options = new LoadOptions { Log = log.Add };
        var w = TinyNet.Weights();
        w["extra"] = torch.zeros(2);
        w.Remove("scale");
        SafetensorsFile.Save(file, w);
        var e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, options, _ => new TinyNet()));
        Assert.Equal($"{file}: the weights do not match TinyNet: missing keys: scale [3]; unexpected keys: extra [2]", e.Message);
        Assert.Equal(("scale", file), (e.Key, e.FilePath));

        w = TinyNet.Weights();
        w["extra"] = torch.zeros(2);
        w["conv.bias"] = torch.zeros(5);
        SafetensorsFile.Save(file, w);
        e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, options, _ => new TinyNet()));
        Assert.Equal($"{file}: weight 'conv.bias' has shape [5] but TinyNet expects [4]", e.Message);

        // a file whose legacy attention names do not map (no such block in the model) misses the model's own names
        w = TinyNet.Weights();
        foreach (var k in w.Keys.Where(k => k.StartsWith("attn.to_q.", StringComparison.Ordinal)).ToList())
            w["other." + k[5..].Replace("to_q", "query")] = w[k];
        w.Remove("attn.to_q.weight");
        w.Remove("attn.to_q.bias");
        SafetensorsFile.Save(file, w);
        e = Assert.Throws<WeightsException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, options, _ => new TinyNet()));
        Assert.Equal($"{file}: the weights do not match TinyNet: missing keys: attn.to_q.bias [4], attn.to_q.weight [4, 4]; unexpected keys: other.query.bias [4], other.query.weight [4, 4]", e.Message);
        Assert.Empty(log);
    }

    [Fact]
    public void PrepareWeightsCanFoldAliasesBeforeTheStrictLoad()
    {
        using var dir = new TempDir();
        var w = TinyNet.Weights();
        w["conv.W"] = w["conv.weight"];            // an alias diffusers' state dict carries
        w["scale_alias"] = w["scale"];
        w.Remove("scale");
        SafetensorsFile.Save(dir.File("diffusion_pytorch_model.safetensors"), w);
        File.WriteAllText(dir.File("config.json"), """{"_class_name": "TinyNet"}""");
        using var net = ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet(),
            expectedClassName: "TinyNet",
            prepareWeights: (model, weights) =>
            {
                Assert.IsType<TinyNet>(model);
                weights.Remove("conv.W");
                weights.Remove("scale_alias", out var s);
                weights["scale"] = s!;
            });
        var expected = TinyNet.Weights();
        foreach (var (k, v) in net.state_dict())
            Assert.True(v.equal(expected[k]).all().item<bool>(), k);
    }

    [Fact]
    public void ConfigOfAnotherClassIsRefused()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"_class_name": "AutoencoderKL"}""");
        var e = Assert.Throws<ConfigException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet(), expectedClassName: "TinyNet"));
        Assert.Equal($"{dir.File("config.json")}: config key '_class_name' is 'AutoencoderKL', expected 'TinyNet'", e.Message);
        Assert.Equal("_class_name", e.Key);
    }

    [Fact]
    public void MissingConfigIsAClearError()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ConfigException>(() => ModelLoading.FromPretrained<TinyNetConfig, TinyNet>(dir.Path, null, null, _ => new TinyNet()));
        Assert.Equal($"Config file not found: {dir.File("config.json")}", e.Message);
    }

    [Fact]
    public void FailedSaveKeepsWhatWasThere()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "old config");
        Directory.CreateDirectory(dir.File("diffusion_pytorch_model.safetensors")); // the weights cannot be renamed into place
        using var net = new TinyNet();
        var e = Assert.Throws<DiffusersException>(() => ModelLoading.SavePretrained(net, new TinyNetConfig(), dir.Path));
        Assert.StartsWith($"Cannot write {dir.File("diffusion_pytorch_model.safetensors")}: ", e.Message);
        Assert.Equal("old config", File.ReadAllText(dir.File("config.json")));
        Assert.Equal(new[] { "config.json" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void SavingIntoAFileIsRefused()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("x"), "keep");
        using var net = new TinyNet();
        var e = Assert.Throws<DiffusersException>(() => ModelLoading.SaveWeights(net, dir.File("x")));
        Assert.Equal($"Cannot save into {dir.File("x")}: it is a file, not a folder", e.Message);
        Assert.Equal("keep", File.ReadAllText(dir.File("x")));
    }
}
