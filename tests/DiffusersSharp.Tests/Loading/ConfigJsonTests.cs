using System.Text.Json;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Loading;

/// <summary>A config with the kinds of keys diffusers' configs have.</summary>
public sealed record SampleConfig : DiffusersConfig
{
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64, 128];
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    [JsonPropertyName("s_tmax")] public double STmax { get; init; } = double.PositiveInfinity;
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    [JsonPropertyName("attention_head_dim")] public int? AttentionHeadDim { get; init; } = 8;
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
}

/// <summary>ConfigJson: errors with file, line, column and key; unknown keys and Python literals round-trip.</summary>
public class ConfigJsonTests
{
    [Fact]
    public void InvalidJsonNamesFileLineAndColumn()
    {
        using var dir = new TempDir();
        string p = dir.File("config.json");
        File.WriteAllText(p, "{\n  \"sample_size\": 32,\n  \"act_fn\": silu\n}");
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Read<SampleConfig>(p));
        Assert.True(e.Message.StartsWith($"{p}: invalid JSON (line 3, column 13): "), e.Message);
        Assert.Equal(p, e.FilePath);
    }

    [Theory]
    [InlineData("""{"sample_size": "big"}""", "sample_size")]
    [InlineData("""{"sample_size": 3.5}""", "sample_size")]
    [InlineData("""{"block_out_channels": [64, "x"]}""", "block_out_channels[1]")]
    [InlineData("""{"block_out_channels": 64}""", "block_out_channels")]
    [InlineData("""{"norm_eps": [1]}""", "norm_eps")]
    [InlineData("""{"norm_eps": "tiny"}""", "norm_eps")]
    [InlineData("""{"act_fn": 3}""", "act_fn")]
    public void WrongTypeNamesFileAndKey(string json, string key)
    {
        using var dir = new TempDir();
        string p = dir.File("config.json");
        File.WriteAllText(p, json);
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Read<SampleConfig>(p));
        Assert.True(e.Message.StartsWith($"{p}: config key '{key}' has a value of the wrong type or form for SampleConfig (line 1, column "), e.Message);
        Assert.Equal(key, e.Key);
        Assert.Equal(p, e.FilePath);
    }

    [Fact]
    public void AbsentKeysKeepDefaultsAndNullIsAllowedWhereDiffusersAllowsIt()
    {
        var c = ConfigJson.Parse<SampleConfig>("""{"attention_head_dim": null, "sample_size": 64}""", "c.json");
        Assert.Null(c.AttentionHeadDim);
        Assert.Equal(64, c.SampleSize);
        Assert.Equal(new[] { 64, 128 }, c.BlockOutChannels);
        Assert.Equal(1e-5, c.NormEps);
    }

    [Fact]
    public void UnknownKeysSurviveReadWriteRead()
    {
        using var dir = new TempDir();
        string p = dir.File("config.json");
        File.WriteAllText(p, """
            {"_class_name": "UNet2DModel", "_diffusers_version": "0.25.1", "sample_size": 16,
             "freq_shift": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "nested": {"a": [1.5, null, true]},
             "huge": 12345678901234567890, "future_eps": -Infinity}
            """);
        var c = ConfigJson.Read<SampleConfig>(p);
        Assert.Equal(16, c.SampleSize);
        Assert.Equal(new[] { "down_block_types", "freq_shift", "future_eps", "huge", "nested" }, c.Extra!.Keys.Order());
        string p2 = dir.File("config2.json");
        ConfigJson.Write(c, p2);
        var c2 = ConfigJson.Read<SampleConfig>(p2);
        Assert.Equal(c.Extra.Keys.Order(), c2.Extra!.Keys.Order());
        foreach (var k in c.Extra.Keys)
            Assert.Equal(c.Extra[k].GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""),
                         c2.Extra[k].GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""));
        string text = File.ReadAllText(p2);
        Assert.Contains("\"huge\": 12345678901234567890", text);
        Assert.Contains("\"future_eps\": -Infinity", text);   // still a number for Python, not the string "-Infinity"
        Assert.Contains("\"_class_name\": \"UNet2DModel\"", text);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void PythonNonFiniteLiteralsAreReadAndWrittenAsPythonDoes()
    {
        var c = ConfigJson.Parse<SampleConfig>("""{"s_tmax": Infinity, "lambda_min_clipped": -Infinity, "norm_eps": NaN, "act_fn": "NaN Infinity"}""", "c.json");
        Assert.Equal(double.PositiveInfinity, c.STmax);
        Assert.Equal(double.NegativeInfinity, c.LambdaMinClipped);
        Assert.True(double.IsNaN(c.NormEps));
        Assert.Equal("NaN Infinity", c.ActFn);
        string json = ConfigJson.Serialize(c);
        Assert.Contains("\"s_tmax\": Infinity", json);
        Assert.Contains("\"lambda_min_clipped\": -Infinity", json);
        Assert.Contains("\"norm_eps\": NaN", json);
        Assert.Contains("\"act_fn\": \"NaN Infinity\"", json);
    }

    [Fact]
    public void GoldenStyleInfStringsAreAccepted()
    {
        var c = ConfigJson.Parse<SampleConfig>("""{"s_tmax": "inf", "lambda_min_clipped": "-inf"}""", "c.json");
        Assert.Equal(double.PositiveInfinity, c.STmax);
        Assert.Equal(double.NegativeInfinity, c.LambdaMinClipped);
    }

    [Theory]   // expected strings are Python 3.11's repr(float) of the same values
    [InlineData(1e-6, "1e-06")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00012, "0.00012")]
    [InlineData(0.0085, "0.0085")]
    [InlineData(0.012, "0.012")]
    [InlineData(1.0, "1.0")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(0.18215, "0.18215")]
    [InlineData(123456.789, "123456.789")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1.5e17, "1.5e+17")]
    [InlineData(0.1 + 0.2, "0.30000000000000004")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(0.0, "0.0")]
    public void FloatsAreWrittenAsPythonReprWritesThem(double value, string python)
    {
        Assert.Equal(python, ConfigJson.PythonRepr(value));
        string json = ConfigJson.Serialize(new SampleConfig { NormEps = value });
        Assert.Contains($"\"norm_eps\": {python},", json);
        Assert.Equal(value, ConfigJson.Parse<SampleConfig>(json, "c.json").NormEps);
    }

    [Fact]
    public void GoldenUnetConfigReadsAndKeepsEveryKey()
    {
        string p = Golden.Path("tiny-ddpm", "unet", "config.json");
        var c = ConfigJson.Read<SampleConfig>(p);
        using var doc = JsonDocument.Parse(File.ReadAllText(p));
        var known = new HashSet<string> { "_class_name", "_diffusers_version", "sample_size", "block_out_channels", "norm_eps", "s_tmax", "lambda_min_clipped", "attention_head_dim", "act_fn" };
        Assert.Equal(doc.RootElement.EnumerateObject().Select(x => x.Name).Where(n => !known.Contains(n)).Order(), c.Extra!.Keys.Order());
        Assert.Equal(doc.RootElement.GetProperty("sample_size").GetInt32(), c.SampleSize);
    }
}
