using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// T2IAdapter and MultiAdapter against diffusers 0.25.1 (tests/golden/t2i-adapter, made by its make.py): the four tiny
/// adapters of tests/golden/tiny-t2i-adapter (full_adapter RGB and greyscale, light_adapter, full_adapter_xl) on seeded
/// inputs, and a MultiAdapter of two with diffusers' default weights and with [0.8, 0.4].
/// </summary>
public class T2IAdapterGoldenTests
{
    internal const string Expected = "t2i-adapter/t2i-adapter-expected.safetensors";

    internal static string Folder(string name) => Golden.Path("tiny-t2i-adapter", name);

    internal static T2IAdapter Load(string name) => T2IAdapter.FromPretrained(Folder(name));

    [Theory]
    [InlineData("sd-full", "full_adapter", 2, 4)]
    [InlineData("sd-full-gray", "full_adapter", 2, 4)]
    [InlineData("sd-light", "light_adapter", 3, 8)]
    [InlineData("sdxl-full", "full_adapter_xl", 4, 8)]
    public void EachAdapterTypeGivesDiffusersStates(string name, string type, int states, int totalDownscale)
    {
        using var adapter = Load(name);
        Assert.Equal(type, adapter.Config.AdapterType);
        Assert.Equal(totalDownscale, adapter.TotalDownscaleFactor);
        using var f = Golden.Open(Expected);
        using var x = f.Load($"forward/{name}/x");
        var features = adapter.Forward(x);
        Assert.Equal(states, features.Length);
        for (int i = 0; i < states; i++)
        {
            using var expected = f.Load($"forward/{name}/feature_{i}");
            Tol.Close(features[i], expected, Tol.ModelAbs, $"{name} state {i}");
        }
        foreach (var t in features) t.Dispose();
    }

    [Theory]
    [InlineData("multi-default", null, null)]
    [InlineData("multi-weights", 0.8, 0.4)]
    public void MultiAdapterSumsTheWeightedStatesAsDiffusers(string name, double? w0, double? w1)
    {
        using var multi = new MultiAdapter([Load("sd-full"), Load("sd-full-gray")]);
        using var f = Golden.Open(Expected);
        using var x0 = f.Load($"forward/{name}/x_0");
        using var x1 = f.Load($"forward/{name}/x_1");
        var features = multi.Forward([x0, x1], w0 is double a && w1 is double b ? [a, b] : null);
        Assert.Equal(2, features.Length);
        for (int i = 0; i < features.Length; i++)
        {
            using var expected = f.Load($"forward/{name}/feature_{i}");
            Tol.Close(features[i], expected, Tol.ModelAbs, $"{name} state {i}");
        }
        foreach (var t in features) t.Dispose();
    }

    [Fact]
    public void SavePretrainedRoundTripsConfigAndWeights()
    {
        using var dir = new TempDir();
        using var adapter = Load("sd-light");
        adapter.SavePretrained(dir.Path);
        using var again = T2IAdapter.FromPretrained(dir.Path);
        Assert.Equal(adapter.Config with { Channels = [] }, again.Config with { Channels = [] });
        Assert.Equal(adapter.Config.Channels, again.Config.Channels);
        var a = adapter.state_dict();
        var b = again.state_dict();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (k, v) in a) Assert.True(Tol.MaxAbsDiff(b[k], v) == 0, k);
        // diffusers' weight names
        Assert.Contains("adapter.body.0.in_conv.weight", a.Keys);
        Assert.Contains("adapter.body.2.resnets.1.block2.weight", a.Keys);
        Assert.Contains("adapter.body.2.out_conv.bias", a.Keys);
    }

    [Fact]
    public void ConfigDefaultsAreDiffusers()
    {
        var c = new T2IAdapterConfig();
        Assert.Equal(3, c.InChannels);
        Assert.Equal([320, 640, 1280, 1280], c.Channels);
        Assert.Equal(2, c.NumResBlocks);
        Assert.Equal(8, c.DownscaleFactor);
        Assert.Equal("full_adapter", c.AdapterType);
        using var model = T2IAdapter.FromConfig(c with { Channels = [8, 16, 16, 16] });
        Assert.Equal(64, model.TotalDownscaleFactor);   // 8 · 2³
    }

    [Fact]
    public void AnUnknownAdapterTypeIsAConfigErrorNamingTheKey()
    {
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, json => json.Replace("\"full_adapter\"", "\"medium_adapter\""), "tiny-t2i-adapter", "sd-full");
        var e = Assert.Throws<ConfigException>(() => T2IAdapter.FromPretrained(dir.Path));
        string config = Path.Combine(dir.Path, "config.json");
        Assert.Equal($"{config}: config key 'adapter_type': unsupported adapter_type 'medium_adapter'; choose 'full_adapter', 'full_adapter_xl' or 'light_adapter'", e.Message);
        Assert.Equal("adapter_type", e.Key);
        Assert.Equal(config, e.FilePath);
    }

    [Fact]
    public void AWeightOfAnotherShapeIsAWeightsErrorNamingTheKey()
    {
        using var dir = new TempDir();
        // 1 input channel in the config, the weights of a 3-channel adapter: conv_in's weight no longer fits
        Golden.CopyModel(dir.Path, json => json.Replace("\"in_channels\": 3", "\"in_channels\": 1"), "tiny-t2i-adapter", "sd-full");
        var e = Assert.Throws<WeightsException>(() => T2IAdapter.FromPretrained(dir.Path));
        Assert.Equal("adapter.conv_in.weight", e.Key);
        Assert.Contains("adapter.conv_in.weight", e.Message);
        Assert.Contains("[32, 12, 3, 3]", e.Message);
        Assert.Contains("[32, 4, 3, 3]", e.Message);
    }

    [Fact]
    public void AControlImageOfTheWrongChannelsOrSizeIsRefusedNamingIt()
    {
        using var adapter = Load("sd-full");
        using var rgba = torch.zeros(1, 4, 32, 32);
        var e = Assert.Throws<ArgumentException>(() => adapter.Forward(rgba));
        Assert.StartsWith("T2IAdapter: the control image has shape [1, 4, 32, 32]; the adapter takes [batch, 3, height, width] (in_channels 3)", e.Message);
        using var odd = torch.zeros(1, 3, 31, 32);
        e = Assert.Throws<ArgumentException>(() => adapter.Forward(odd));
        Assert.StartsWith("T2IAdapter: the control image is 32x31; its height and width must be multiples of the adapter's downscale_factor 2", e.Message);
    }

    [Fact]
    public void MultiAdapterRefusesOneAdapterAndDifferentDownscaling()
    {
        var e = Assert.Throws<ArgumentException>(() => new MultiAdapter([Load("sd-full")]));
        Assert.StartsWith("MultiAdapter: For a single adapter, please use the `T2IAdapter` class instead of `MultiAdapter`", e.Message);
        e = Assert.Throws<ArgumentException>(() => new MultiAdapter([Load("sd-full"), Load("sd-light")]));
        Assert.StartsWith("MultiAdapter: Expecting all adapters to have the same downscaling behavior, but got: adapters[0].total_downscale_factor=4, " +
            "adapters[0].downscale_factor=2, adapters[1].total_downscale_factor=8, adapters[1].downscale_factor=2", e.Message);
    }
}
