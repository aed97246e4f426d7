using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>
/// <c>FromPretrained</c> builds the model in the load dtype (<see cref="ModelBuild"/>) and streams safetensors into it (ModelLoading.LoadWeights): the
/// result must equal, bit for bit and parameter by parameter, the model the old path gives (built in float32, converted
/// with <c>to(dtype)</c>, the whole file read with <see cref="WeightLoader.ReadFile"/> and copied with
/// <see cref="WeightLoader.LoadInto"/>).
/// </summary>
public class StreamedLoadTests
{
    private static string UNetFolder => Golden.Path("tiny-sd", "unet");
    private static string UNetFile => Path.Combine(UNetFolder, "diffusion_pytorch_model.safetensors");
    private static UNet2DConditionModelConfig UNetConfig => ModelLoading.ReadConfig<UNet2DConditionModelConfig>(UNetFolder);

    /// <summary>The old path: float32 build, <c>to(dtype)</c>, the file read whole, <c>LoadInto</c>.</summary>
    private static T Reference<T>(Func<T> build, ScalarType? dtype, string file, Action<IDictionary<string, Tensor>>? prepare = null) where T : nn.Module
    {
        var model = build();
        if (dtype is { } dt) model.to(dt);
        var weights = WeightLoader.ReadFile(file);
        var all = weights.Values.ToList();
        try
        {
            prepare?.Invoke(weights);
            WeightLoader.LoadInto(model, weights, file);
        }
        finally
        {
            foreach (var t in all) t.Dispose();
        }
        model.eval();
        return model;
    }

    private static void AssertBitIdentical(nn.Module expected, nn.Module actual, ScalarType dtype)
    {
        var e = expected.state_dict();
        var a = actual.state_dict();
        Assert.Equal(e.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, want) in e)
        {
            var got = a[k];
            if (want.is_floating_point()) Assert.Equal(dtype, got.dtype);
            Assert.Equal(want.dtype, got.dtype);
            Assert.Equal(want.shape, got.shape);
            Assert.True(want.contiguous().bytes.SequenceEqual(got.contiguous().bytes), $"{k} differs");
        }
    }

    private static void WriteUNetFolder(string folder, ScalarType dtype)
    {
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(UNetFolder, "config.json"), Path.Combine(folder, "config.json"));
        var weights = WeightLoader.ReadFile(UNetFile);
        var converted = weights.ToDictionary(kv => kv.Key, kv => kv.Value.to(dtype), StringComparer.Ordinal);
        SafetensorsFile.Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), converted);
        foreach (var t in weights.Values.Concat(converted.Values)) t.Dispose();
    }

    [Fact]
    public void AFloat32FileLoadsIntoAFloat32ModelAsTheWholeFileRead()
    {
        using var streamed = UNet2DConditionModel.FromPretrained(UNetFolder);
        using var reference = Reference(() => UNet2DConditionModel.FromConfig(UNetConfig), null, UNetFile);
        AssertBitIdentical(reference, streamed, ScalarType.Float32);
    }

    [Fact]
    public void AFloat32FileLoadsIntoABFloat16ModelBuiltInBFloat16AsTheConvertedModel()
    {
        var options = new LoadOptions { Dtype = ScalarType.BFloat16 };
        using var streamed = UNet2DConditionModel.FromPretrained(UNetFolder, null, options);
        using var reference = Reference(() => UNet2DConditionModel.FromConfig(UNetConfig), ScalarType.BFloat16, UNetFile);
        AssertBitIdentical(reference, streamed, ScalarType.BFloat16);

        // a transformers folder, whose prepareWeights drops a key (position_ids, when the file has it)
        string text = Golden.Path("tiny-sd", "text_encoder");
        using var streamedText = CLIPTextModel.FromPretrained(text, null, options);
        using var referenceText = Reference(() => new CLIPTextModel(ModelLoading.ReadConfig<CLIPTextConfig>(text)), ScalarType.BFloat16,
            Path.Combine(text, "model.safetensors"), w => w.Remove(CLIPTextTransformer.PositionIdsKey));
        AssertBitIdentical(referenceText, streamedText, ScalarType.BFloat16);
    }

    [Fact]
    public void AFloat16FileLoadsIntoAFloat32ModelAsTheWholeFileRead()
    {
        using var dir = new TempDir();
        string folder = dir.File("unet16");
        WriteUNetFolder(folder, ScalarType.Float16);
        using var streamed = UNet2DConditionModel.FromPretrained(folder);
        using var reference = Reference(() => UNet2DConditionModel.FromConfig(UNetConfig), null, Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        AssertBitIdentical(reference, streamed, ScalarType.Float32);
        // and the file's values are really float16 ones: not the float32 golden weights
        using var golden = UNet2DConditionModel.FromPretrained(UNetFolder);
        Assert.False(golden.state_dict()["conv_in.weight"].equal(streamed.state_dict()["conv_in.weight"]).all().item<bool>());
    }

    [Theory]
    [InlineData(null)]
    [InlineData(ScalarType.BFloat16)]
    public void ShardedSafetensorsLoadAsTheJoinedShardsRead(ScalarType? dtype)
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(UNetFolder, "config.json"), dir.File("config.json"));
        var weights = WeightLoader.ReadFile(UNetFile);
        var names = weights.Keys.Order(StringComparer.Ordinal).ToList();
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int s = 0; s < 3; s++)
        {
            string shard = $"diffusion_pytorch_model-0000{s + 1}-of-00003.safetensors";
            var part = names.Where((_, i) => i % 3 == s).ToDictionary(n => n, n => weights[n], StringComparer.Ordinal);
            SafetensorsFile.Save(dir.File(shard), part);
            foreach (var n in part.Keys) map[n] = shard;
        }
        foreach (var t in weights.Values) t.Dispose();
        string index = dir.File("diffusion_pytorch_model.safetensors.index.json");
        File.WriteAllText(index, System.Text.Json.JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));

        using var streamed = UNet2DConditionModel.FromPretrained(dir.Path, null, new LoadOptions { Dtype = dtype });
        using var reference = Reference(() => UNet2DConditionModel.FromConfig(UNetConfig), dtype, index);
        AssertBitIdentical(reference, streamed, dtype ?? ScalarType.Float32);
    }

    /// <summary>A tensor of more than two chunks (and a partial last one), same dtype and converted both ways.</summary>
    [Theory]
    [InlineData(ScalarType.Float32, ScalarType.Float32)]
    [InlineData(ScalarType.Float32, ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16, ScalarType.Float32)]
    public void ATensorOfSeveralChunksLoadsAsTheWholeFileRead(ScalarType stored, ScalarType model)
    {
        using var dir = new TempDir();
        using var source = nn.Linear(4100, 4200);
        Assert.True(source.weight!.numel() * 2 > 2 * SafetensorsWeights.ChunkBytes);
        string file = dir.File("diffusion_pytorch_model.safetensors");
        var state = source.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(stored), StringComparer.Ordinal);
        SafetensorsFile.Save(file, state);
        foreach (var t in state.Values) t.Dispose();
        using var streamed = nn.Linear(4100, 4200).to(model);
        ModelLoading.LoadWeights(streamed, dir.Path);
        using var reference = Reference(() => nn.Linear(4100, 4200), model, file);
        AssertBitIdentical(reference, streamed, model);
    }

    [Fact]
    public void TheModelIsBuiltInTheLoadDtypeOnItsOwnThreadOnly()
    {
        ScalarType[] built = [], otherThread = [];
        using var model = ModelLoading.FromPretrained<UNet2DConditionModelConfig, UNet2DConditionModel>(
            UNetFolder, null, new LoadOptions { Dtype = ScalarType.BFloat16 }, c =>
            {
                var m = UNet2DConditionModel.FromConfig(c);
                built = m.parameters().Select(p => p.dtype).Distinct().ToArray();
                var t = new Thread(() =>
                {
                    using var other = UNet2DConditionModel.FromConfig(c);
                    otherThread = other.parameters().Select(p => p.dtype).Append(torch.randn(2).dtype).Distinct().ToArray();
                });
                t.Start();
                t.Join();
                return m;
            });
        Assert.Equal([ScalarType.BFloat16], built);
        Assert.Equal([ScalarType.Float32], otherThread);
        Assert.Null(ModelBuild.Dtype);
        Assert.Equal(ScalarType.Float32, torch.get_default_dtype());
    }

    /// <summary>Every layer of each model class reads the build dtype: nothing is made in float32 and converted after.</summary>
    [Fact]
    public void EveryModelClassIsBuiltWholeInTheLoadDtype()
    {
        var bf16 = new LoadOptions { Dtype = ScalarType.BFloat16 };
        ScalarType[] Built<TConfig, TModel>(string folder, string? subfolder, Func<TConfig, TModel> build)
            where TConfig : DiffusersConfig where TModel : nn.Module
        {
            ScalarType[] dtypes = [];
            using var m = ModelLoading.FromPretrained<TConfig, TModel>(folder, subfolder, bf16, c =>
            {
                var model = build(c);
                dtypes = model.parameters().Select(p => p.dtype).Distinct().ToArray();
                return model;
            });
            return dtypes;
        }
        Assert.Equal([ScalarType.BFloat16], Built<AutoencoderKLConfig, AutoencoderKL>(Golden.Path("tiny-sd"), "vae", c => AutoencoderKL.FromConfig(c)));
        Assert.Equal([ScalarType.BFloat16], Built<AutoencoderTinyConfig, AutoencoderTiny>(Golden.Path("tiny-taesd"), null, c => AutoencoderTiny.FromConfig(c)));
        Assert.Equal([ScalarType.BFloat16], Built<ControlNetModelConfig, ControlNetModel>(Golden.Path("tiny-sd-controlnet"), null, c => ControlNetModel.FromConfig(c)));
        Assert.Equal([ScalarType.BFloat16], Built<UNet2DConditionModelConfig, UNet2DConditionModel>(Golden.Path("tiny-sdxl"), "unet", c => UNet2DConditionModel.FromConfig(c)));
        Assert.Equal([ScalarType.BFloat16], Built<UNet2DModelConfig, UNet2DModel>(Golden.Path("tiny-ddpm"), "unet", c => UNet2DModel.FromConfig(c)));
        ScalarType[] text = [];
        using (CLIPTextTransformer.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2", bf16, c =>
               {
                   var model = new CLIPTextModelWithProjection(c);
                   text = model.parameters().Select(p => p.dtype).Distinct().ToArray();
                   return model;
               })) { }
        Assert.Equal([ScalarType.BFloat16], text);
    }

    [Fact]
    public void TheBuildDtypeIsRestoredWhenTheBuildThrows()
    {
        ScalarType? during = null;
        var e = Assert.Throws<InvalidOperationException>(() => ModelLoading.FromPretrained<UNet2DConditionModelConfig, UNet2DConditionModel>(
            UNetFolder, null, new LoadOptions { Dtype = ScalarType.Float16 }, c =>
            {
                during = ModelBuild.Dtype;
                throw new InvalidOperationException("the build failed");
            }));
        Assert.Equal("the build failed", e.Message);
        Assert.Equal(ScalarType.Float16, during);
        Assert.Null(ModelBuild.Dtype);
        using var after = UNet2DConditionModel.FromConfig(UNetConfig);
        Assert.Equal([ScalarType.Float32], after.parameters().Select(p => p.dtype).Distinct());
    }

    [Fact]
    public void AStreamedLoadKeepsTheChecksAndTheirMessages()
    {
        using var dir = new TempDir();
        string folder = dir.File("unet");
        WriteUNetFolder(folder, ScalarType.Float32);
        string file = Path.Combine(folder, "diffusion_pytorch_model.safetensors");
        var weights = WeightLoader.ReadFile(file);
        weights["conv_in.bias"].Dispose();
        weights["conv_in.bias"] = torch.zeros(3);
        SafetensorsFile.Save(file, weights);
        foreach (var t in weights.Values) t.Dispose();
        var shape = Assert.Throws<WeightsException>(() => UNet2DConditionModel.FromPretrained(folder, null, new LoadOptions { Dtype = ScalarType.BFloat16 }));
        Assert.Equal($"{file}: weight 'conv_in.bias' has shape [3] but UNet2DConditionModel expects [32]", shape.Message);

        // a float32 value beyond the float16 range is refused after the conversion, as for a file read whole
        WriteUNetFolder(dir.File("big"), ScalarType.Float32);
        string big = dir.File("big/diffusion_pytorch_model.safetensors");
        weights = WeightLoader.ReadFile(big);
        weights["conv_in.weight"][0, 0, 0, 0] = torch.tensor(1e5f);
        SafetensorsFile.Save(big, weights);
        foreach (var t in weights.Values) t.Dispose();
        using (UNet2DConditionModel.FromPretrained(dir.File("big"))) { }
        var inf = Assert.Throws<WeightsException>(() => UNet2DConditionModel.FromPretrained(dir.File("big"), null, new LoadOptions { Dtype = ScalarType.Float16 }));
        Assert.Equal($"{big}: weight 'conv_in.weight' of UNet2DConditionModel holds 1 non-finite values of 1152 (0 NaN, 1 ±Inf, as Float16): the checkpoint is corrupt, or its values do not fit the dtype", inf.Message);
    }
}
