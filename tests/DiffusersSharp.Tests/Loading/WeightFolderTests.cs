using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>WeightLoader.ReadFolder: preference, variants, shards, and what it says when nothing is there.</summary>
public class WeightFolderTests
{
    private static void WriteSt(string path, params (string Name, float Value)[] tensors) =>
        SafetensorsFile.Save(path, tensors.ToDictionary(t => t.Name, t => torch.full(new long[] { 2 }, t.Value)),
            new Dictionary<string, string> { ["format"] = "pt" });

    private static void WriteBin(string path, string name, float value)
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        p.Str(name).Tensor("FloatStorage", "0", 2, 0, [2], [1]);
        p.Op('u');
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]>
        {
            ["0"] = BitConverter.GetBytes(value).Concat(BitConverter.GetBytes(value)).ToArray(),
        });
    }

    private static float First(Dictionary<string, Tensor> w, string key) => w[key][0].item<float>();

    [Fact]
    public void SafetensorsIsPreferredOverBin()
    {
        using var dir = new TempDir();
        WriteBin(dir.File("diffusion_pytorch_model.bin"), "w", 1f);
        Assert.Equal(1f, First(WeightLoader.ReadFolder(dir.Path), "w"));
        WriteSt(dir.File("diffusion_pytorch_model.safetensors"), ("w", 2f));
        Assert.Equal(2f, First(WeightLoader.ReadFolder(dir.Path), "w"));
        Assert.Equal(dir.File("diffusion_pytorch_model.safetensors"), WeightLoader.FindWeights(dir.Path));
    }

    [Fact]
    public void GoldenFolderReadsTheSafetensorsFile()
    {
        string folder = Golden.Path("tiny-ddpm", "unet");
        Assert.Equal(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), WeightLoader.FindWeights(folder));
        var w = WeightLoader.ReadFolder(folder);
        using var expected = Golden.Tensor(Path.Combine("tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors"), "conv_in.weight");
        Assert.True(expected.bytes.SequenceEqual(w["conv_in.weight"].bytes));
    }

    [Fact]
    public void VariantFilesAreChosenOnlyWhenAskedFor()
    {
        using var dir = new TempDir();
        WriteSt(dir.File("diffusion_pytorch_model.safetensors"), ("w", 1f));
        WriteSt(dir.File("diffusion_pytorch_model.fp16.safetensors"), ("w", 2f));
        WriteBin(dir.File("diffusion_pytorch_model.ema.bin"), "w", 3f);
        Assert.Equal(1f, First(WeightLoader.ReadFolder(dir.Path), "w"));
        Assert.Equal(2f, First(WeightLoader.ReadFolder(dir.Path, variant: "fp16"), "w"));
        Assert.Equal(3f, First(WeightLoader.ReadFolder(dir.Path, variant: "ema"), "w"));
    }

    [Fact]
    public void MissingVariantSaysWhatIsThere()
    {
        using var dir = new TempDir();
        WriteSt(dir.File("diffusion_pytorch_model.safetensors"), ("w", 1f));
        var e = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.Path, variant: "fp16"));
        Assert.Equal(
            $"No weights found in {dir.Path}: looked for diffusion_pytorch_model.fp16.safetensors, diffusion_pytorch_model.safetensors.index.fp16.json, " +
            "diffusion_pytorch_model.fp16.bin, diffusion_pytorch_model.bin.index.fp16.json " +
            "(there is diffusion_pytorch_model.safetensors, without the 'fp16' variant: load it with variant null)", e.Message);
    }

    [Fact]
    public void NothingFoundListsEveryNameLookedFor()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        var e = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.Path, "model"));
        Assert.Equal($"No weights found in {dir.Path}: looked for model.safetensors, model.safetensors.index.json, model.bin, model.bin.index.json", e.Message);
        var e2 = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.File("nope")));
        Assert.Equal($"Model folder not found: {dir.File("nope")}", e2.Message);
    }

    [Fact]
    public void ShardedSafetensorsAreJoined()
    {
        using var dir = new TempDir();
        WriteSt(dir.File("diffusion_pytorch_model-00001-of-00002.safetensors"), ("a", 1f), ("b", 2f));
        WriteSt(dir.File("diffusion_pytorch_model-00002-of-00002.safetensors"), ("c", 3f));
        File.WriteAllText(dir.File("diffusion_pytorch_model.safetensors.index.json"), """
            {"metadata": {"total_size": 24}, "weight_map": {
              "a": "diffusion_pytorch_model-00001-of-00002.safetensors",
              "b": "diffusion_pytorch_model-00001-of-00002.safetensors",
              "c": "diffusion_pytorch_model-00002-of-00002.safetensors"}}
            """);
        var w = WeightLoader.ReadFolder(dir.Path);
        Assert.Equal(new[] { "a", "b", "c" }, w.Keys.OrderBy(k => k));
        Assert.Equal(new[] { 1f, 2f, 3f }, new[] { First(w, "a"), First(w, "b"), First(w, "c") });
    }

    [Fact]
    public void ShardedVariantUsesTransformersNames()
    {
        using var dir = new TempDir();
        WriteSt(dir.File("model.fp16-00001-of-00002.safetensors"), ("a", 1f));
        WriteSt(dir.File("model.fp16-00002-of-00002.safetensors"), ("b", 2f));
        File.WriteAllText(dir.File("model.safetensors.index.fp16.json"), """
            {"weight_map": {"a": "model.fp16-00001-of-00002.safetensors", "b": "model.fp16-00002-of-00002.safetensors"}}
            """);
        var w = WeightLoader.ReadFolder(dir.Path, "model", "fp16");
        Assert.Equal(new[] { 1f, 2f }, new[] { First(w, "a"), First(w, "b") });
    }

    [Fact]
    public void ShardedBinIsRead()
    {
        using var dir = new TempDir();
        WriteBin(dir.File("pytorch_model-00001-of-00001.bin"), "a", 5f);
        File.WriteAllText(dir.File("pytorch_model.bin.index.json"), """{"weight_map": {"a": "pytorch_model-00001-of-00001.bin"}}""");
        Assert.Equal(5f, First(WeightLoader.ReadFolder(dir.Path, "pytorch_model"), "a"));
    }

    [Theory]
    [InlineData("""{"weight_map": {"a": "s1.safetensors", "b": "missing.safetensors"}}""", "{0}: shard 'missing.safetensors' is listed in weight_map but {1} does not exist")]
    [InlineData("""{"weight_map": {"a": "s1.safetensors", "zz": "s1.safetensors"}}""", "{0}: weight_map puts 'zz' in 's1.safetensors', but no shard has it")]
    [InlineData("""{"weight_map": {"a": "../s1.safetensors"}}""", "{0}: weight_map entry 'a' names '../s1.safetensors', which is not a plain file name in the index's folder")]
    [InlineData("""{"weight_map": ["s1.safetensors"]}""", "{0}: \"weight_map\" must be an object of tensor name → shard file, not Array")]
    [InlineData("""{"metadata": {}}""", "{0}: a shard index needs a \"weight_map\" object")]
    [InlineData("""{"weight_map": {"a": 3}}""", "{0}: weight_map entry 'a' must be a file name string, not 3")]
    public void BadShardIndexIsAClearError(string json, string expected)
    {
        using var dir = new TempDir();
        WriteSt(dir.File("s1.safetensors"), ("a", 1f));
        string index = dir.File("w.safetensors.index.json");
        File.WriteAllText(index, json);
        var e = Assert.ThrowsAny<DiffusersException>(() => WeightLoader.ReadFolder(dir.Path, "w"));
        Assert.Equal(index, e.FilePath);
        Assert.Equal(string.Format(expected, index, dir.File("missing.safetensors")), e.Message);
    }

    [Fact]
    public void InvalidShardIndexJsonHasLineAndColumn()
    {
        using var dir = new TempDir();
        string index = dir.File("w.safetensors.index.json");
        File.WriteAllText(index, "{\n  \"weight_map\": {\"a\": }\n}");
        var e = Assert.Throws<ConfigException>(() => WeightLoader.ReadFolder(dir.Path, "w"));
        Assert.True(e.Message.StartsWith($"{index}: invalid JSON (line 2, column 23)"), e.Message);
    }
}
