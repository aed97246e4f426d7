using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>UNet2DModelConfig parsing/defaults, the google/ddpm-cat-256 layout, and config errors.</summary>
public class UNet2DModelConfigTests
{
    /// <summary>google/ddpm-cat-256's unet/config.json (a 2022 checkpoint: old keys, diffusers 0.1-era values).</summary>
    internal const string DdpmCat256Json = """
    {
      "_class_name": "UNet2DModel",
      "_diffusers_version": "0.1.1",
      "act_fn": "silu",
      "attention_head_dim": null,
      "block_out_channels": [128, 128, 256, 256, 512, 512],
      "center_input_sample": false,
      "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
      "downsample_padding": 0,
      "flip_sin_to_cos": false,
      "freq_shift": 1,
      "in_channels": 3,
      "layers_per_block": 2,
      "mid_block_scale_factor": 1,
      "norm_eps": 1e-06,
      "norm_num_groups": 32,
      "out_channels": 3,
      "sample_size": 256,
      "time_embedding_type": "positional",
      "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]
    }
    """;

    [Fact]
    public void DefaultsAreDiffusers0251Defaults()
    {
        var c = ConfigJson.Parse<UNet2DModelConfig>("{}", "empty.json");
        Assert.Null(c.SampleSize);
        Assert.Equal(3, c.InChannels);
        Assert.Equal(3, c.OutChannels);
        Assert.False(c.CenterInputSample);
        Assert.Equal("positional", c.TimeEmbeddingType);
        Assert.Equal(0, c.FreqShift);
        Assert.True(c.FlipSinToCos);
        Assert.Equal(new[] { "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D" }, c.DownBlockTypes);
        Assert.Equal(new[] { "AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D" }, c.UpBlockTypes);
        Assert.Equal(new[] { 224, 448, 672, 896 }, c.BlockOutChannels);
        Assert.Equal(2, c.LayersPerBlock);
        Assert.Equal(1.0, c.MidBlockScaleFactor);
        Assert.Equal(1, c.DownsamplePadding);
        Assert.Equal("conv", c.DownsampleType);
        Assert.Equal("conv", c.UpsampleType);
        Assert.Equal(0.0, c.Dropout);
        Assert.Equal("silu", c.ActFn);
        Assert.Equal(8, c.AttentionHeadDim);
        Assert.Equal(32, c.NormNumGroups);
        Assert.Null(c.AttnNormNumGroups);
        Assert.Equal(1e-5, c.NormEps);
        Assert.Equal("default", c.ResnetTimeScaleShift);
        Assert.True(c.AddAttention);
        Assert.Null(c.ClassEmbedType);
        Assert.Null(c.NumClassEmbeds);
        Assert.Null(c.NumTrainTimesteps);
    }

    [Fact]
    public void DdpmCat256ConfigParses()
    {
        var c = ConfigJson.Parse<UNet2DModelConfig>(DdpmCat256Json, "ddpm-cat-256/unet/config.json");
        Assert.Equal(new[] { 256 }, c.SampleSize);
        Assert.Equal(1, c.FreqShift);
        Assert.False(c.FlipSinToCos);
        Assert.Equal(0, c.DownsamplePadding);
        Assert.Null(c.AttentionHeadDim);
        Assert.Equal(1e-6, c.NormEps);
        Assert.Equal(new[] { 128, 128, 256, 256, 512, 512 }, c.BlockOutChannels);
    }

    [Fact]
    public void DdpmCat256LayoutHas113_7MParameters()
    {
        var c = ConfigJson.Parse<UNet2DModelConfig>(DdpmCat256Json, "ddpm-cat-256/unet/config.json");
        using var unet = UNet2DModel.FromConfig(c);
        long n = unet.NumParameters();
        // google/ddpm-cat-256: 113,673,219 parameters (113.7M).
        Assert.Equal(113_673_219L, n);
        var names = unet.named_parameters().Select(p => p.name).ToHashSet();
        // diffusers' names for the old-style blocks: attention only in down block 4 / up block 1 and the mid block.
        Assert.Contains("down_blocks.4.attentions.1.to_q.weight", names);
        Assert.Contains("down_blocks.4.downsamplers.0.conv.weight", names);
        Assert.DoesNotContain("down_blocks.5.downsamplers.0.conv.weight", names);
        Assert.Contains("up_blocks.1.attentions.2.group_norm.weight", names);
        Assert.Contains("mid_block.attentions.0.to_out.0.bias", names);
        Assert.DoesNotContain("up_blocks.5.upsamplers.0.conv.weight", names);
    }

    [Fact]
    public void SmallDdpmCatLayoutRunsForward()
    {
        // Same block layout and 2022 options as google/ddpm-cat-256, tiny channels, 32x32 (5 downsamplings to 1x1).
        var c = ConfigJson.Parse<UNet2DModelConfig>(DdpmCat256Json, "cat.json") with
        {
            BlockOutChannels = [8, 8, 16, 16, 32, 32],
            NormNumGroups = 4,
            SampleSize = [32],
        };
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromConfig(c);
        unet.eval();
        using var g = new Generator(3);
        using var x = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g);
        using var y = unet.Forward(x, 999L).Sample;
        Assert.Equal(new long[] { 1, 3, 32, 32 }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
        using var y2 = unet.Forward(x, 10L).Sample;
        Assert.True(Tol.MaxAbsDiff(y, y2) > 0, "the timestep must change the output");
    }

    [Fact]
    public void UnknownDownBlockTypeIsAConfigErrorNamingKeyAndValue()
    {
        var json = """{"down_block_types": ["DownBlock2D", "FancyDownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"], "block_out_channels": [32, 64]}""";
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "x/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DModel.FromConfig(c, "x/config.json"));
        Assert.Equal("down_block_types", e.Key);
        Assert.Contains("'FancyDownBlock2D'", e.Message);
        Assert.Contains("x/config.json", e.Message);
    }

    [Fact]
    public void UnknownUpBlockTypeIsAConfigErrorNamingKeyAndValue()
    {
        var json = """{"down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "block_out_channels": [32, 64]}""";
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "y/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DModel.FromConfig(c, "y/config.json"));
        Assert.Equal("up_block_types", e.Key);
        Assert.Contains("'CrossAttnUpBlock2D'", e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void SkipBlocksAreRefusedAsNotPorted()
    {
        var json = """{"down_block_types": ["SkipDownBlock2D", "AttnSkipDownBlock2D"], "up_block_types": ["AttnSkipUpBlock2D", "SkipUpBlock2D"], "block_out_channels": [32, 64]}""";
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "ncsnpp/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DModel.FromConfig(c, "ncsnpp/config.json"));
        Assert.Equal("down_block_types", e.Key);
        Assert.Equal("ncsnpp/config.json: config key 'down_block_types': down block type not supported in a DiffusersSharp UNet2DModel: 'SkipDownBlock2D' at index 0 (supported: DownBlock2D, AttnDownBlock2D, ResnetDownsampleBlock2D, KDownBlock2D)", e.Message);
    }

    [Theory]
    [InlineData("""{"time_embedding_type": "rotary"}""", "time_embedding_type", "'rotary'")]
    [InlineData("""{"class_embed_type": "projection"}""", "class_embed_type", "'projection'")]
    [InlineData("""{"resnet_time_scale_shift": "ada_group"}""", "resnet_time_scale_shift", "'ada_group'")]
    [InlineData("""{"downsample_type": "pool"}""", "downsample_type", "'pool'")]
    [InlineData("""{"act_fn": "tanh"}""", "act_fn", "'tanh'")]
    [InlineData("""{"block_out_channels": [32, 64]}""", "block_out_channels", "[32, 64]")]
    [InlineData("""{"block_out_channels": [30, 60, 90, 120]}""", "block_out_channels", "30")]
    public void BadValuesAreConfigErrors(string json, string key, string valueText)
    {
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "z/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DModel.FromConfig(c, "z/config.json"));
        Assert.Equal(key, e.Key);
        Assert.Contains(valueText, e.Message);
    }

    [Fact]
    public void SampleSizePairAndUnknownKeysRoundTrip()
    {
        var json = """{"sample_size": [32, 48], "some_future_key": {"a": 1}}""";
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "cfg.json");
        Assert.Equal(new[] { 32, 48 }, c.SampleSize);
        var back = ConfigJson.Parse<UNet2DModelConfig>(ConfigJson.Serialize(c), "back.json");
        Assert.Equal(new[] { 32, 48 }, back.SampleSize);
        Assert.True(back.Extra!.ContainsKey("some_future_key"));
        Assert.Contains("\"sample_size\": 32", ConfigJson.Serialize(c with { SampleSize = [32] }));
    }

    [Fact]
    public void ASampleSizeOffTheDownsamplingFactorLoadsAndTheForwardPassNamesTheSizeItCannotRun()
    {
        // diffusers loads any sample_size (unet_2d.py only stores it); its UNet2DModel fails in the up path at a size
        // that is not a multiple of 2^(levels - 1), which here is a clear error naming the size and the factor
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, c => c.Replace("\"sample_size\": 32", "\"sample_size\": 31"), "tiny-ddpm", "unet");
        using var unet = UNet2DModel.FromPretrained(dir.Path);
        Assert.Equal(new[] { 31 }, unet.Config.SampleSize);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(torch.randn(1, 3, 31, 31), 10L));
        Assert.Equal("UNet2DModel: the sample is 31×31, but its height and width must be multiples of 2 (2^1, for 1 upsampler): like diffusers' UNet2DModel, its up path does not resize to the skip connections (Parameter 'sample')", e.Message);
        Assert.Equal(new long[] { 1, 3, 30, 32 }, unet.Forward(torch.randn(1, 3, 30, 32), 10L).Sample.shape);
    }

    [Fact]
    public void SavePretrainedStampsThisLibrarysDiffusersVersion()
    {
        // diffusers' to_json_string writes its own __version__, not the loaded config's
        var json = DdpmCat256Json.Replace("[128, 128, 256, 256, 512, 512]", "[8, 8, 16, 16, 32, 32]").Replace("\"norm_num_groups\": 32", "\"norm_num_groups\": 4");
        var c = ConfigJson.Parse<UNet2DModelConfig>(json, "ddpm-cat.json");
        Assert.Equal("0.1.1", c.DiffusersVersion);
        using var dir = new TempDir();
        using var model = UNet2DModel.FromConfig(c);
        model.SavePretrained(dir.Path);
        using var saved = ConfigJson.ReadObject(Path.Combine(dir.Path, "config.json"));
        Assert.Equal("0.25.1", saved.RootElement.GetProperty("_diffusers_version").GetString());
        Assert.Equal(ModelLoading.DiffusersVersion, saved.RootElement.GetProperty("_diffusers_version").GetString());
        Assert.Equal("UNet2DModel", saved.RootElement.GetProperty("_class_name").GetString());
    }
}
