using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Loading;

/// <summary>model_index.json as diffusers 0.25.1 wrote it, and malformed ones.</summary>
public class PipelineIndexTests
{
    [Fact]
    public void GoldenDdpmIndex()
    {
        var index = PipelineIndex.Read(Golden.Path("tiny-ddpm"));
        Assert.Equal("DDPMPipeline", index.ClassName);
        Assert.Equal("0.25.1", index.DiffusersVersion);
        Assert.Equal(
            new[] { new PipelineComponent("scheduler", "diffusers", "DDPMScheduler"), new PipelineComponent("unet", "diffusers", "UNet2DModel") },
            index.Components);
        Assert.Empty(index.Options);
        Assert.Equal(Golden.Path("tiny-ddpm", "model_index.json"), index.Path);
    }

    [Fact]
    public void GoldenStableDiffusionIndexHasEmptySlotsAndOptions()
    {
        var index = PipelineIndex.Read(Golden.Path("tiny-sd", "model_index.json"));
        Assert.Equal("StableDiffusionPipeline", index.ClassName);
        Assert.Equal(
            new[] { "feature_extractor", "image_encoder", "safety_checker", "scheduler", "text_encoder", "tokenizer", "unet", "vae" },
            index.Components.Select(c => c.Name));
        Assert.True(index.Components.Single(c => c.Name == "safety_checker").IsEmpty);
        Assert.Null(index.Component("safety_checker"));
        Assert.Equal(new PipelineComponent("text_encoder", "transformers", "CLIPTextModel"), index.Component("text_encoder"));
        Assert.Equal(JsonValueKind.False, index.Options["requires_safety_checker"].ValueKind);
        var e = Assert.Throws<ConfigException>(() => index.Require("safety_checker"));
        Assert.Equal($"{index.Path}: the pipeline has no 'safety_checker' component (it has scheduler, text_encoder, tokenizer, unet, vae)", e.Message);
    }

    [Theory]
    [InlineData("""{"_class_name": 3, "unet": ["diffusers", "UNet2DModel"]}""", "_class_name", "'_class_name' must be the pipeline class name (a non-empty string), not 3")]
    [InlineData("""{"unet": ["diffusers", "UNet2DModel"]}""", "_class_name", "'_class_name' is missing: this is not a diffusers pipeline index")]
    [InlineData("""{"_class_name": "P", "_diffusers_version": 0.25}""", "_diffusers_version", "'_diffusers_version' must be a string, not 0.25")]
    [InlineData("""{"_class_name": "P", "unet": ["diffusers"]}""", "unet", "component 'unet' must be [library, class] or [null, null], not [\"diffusers\"]")]
    [InlineData("""{"_class_name": "P", "unet": ["diffusers", null]}""", "unet", "component 'unet' must be [library, class] or [null, null], not [\"diffusers\", null]")]
    [InlineData("""{"_class_name": "P", "vae": ["diffusers", 7]}""", "vae", "component 'vae' must be [library, class] or [null, null], not [\"diffusers\", 7]")]
    [InlineData("""["DDPMPipeline"]""", "", "model_index.json must be a JSON object, not Array")]
    public void WrongTypesNameFileAndKey(string json, string key, string what)
    {
        using var dir = new TempDir();
        string p = dir.File("model_index.json");
        File.WriteAllText(p, json);
        var e = Assert.Throws<ConfigException>(() => PipelineIndex.Read(dir.Path));
        Assert.Equal($"{p}: {what}", e.Message);
        Assert.Equal(p, e.FilePath);
        Assert.Equal(key, e.Key);
    }

    [Fact]
    public void InvalidJsonHasLineAndColumn()
    {
        var e = Assert.Throws<ConfigException>(() => PipelineIndex.Parse("{\n  \"_class_name\": \"P\",\n  \"unet\": [\"diffusers\" \"UNet2DModel\"]\n}", "mi.json"));
        Assert.True(e.Message.StartsWith("mi.json: invalid JSON (line 3, column 24): "), e.Message);
    }

    [Fact]
    public void MissingFileIsAClearError()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ConfigException>(() => PipelineIndex.Read(dir.Path));
        Assert.Equal($"Config file not found: {dir.File("model_index.json")}", e.Message);
    }
}
