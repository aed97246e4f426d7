using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Generation;

/// <summary>
/// The generation service on a latent consistency folder and a panorama folder: each runs its own diffusers classes (the
/// same bytes as the direct call with the same settings) and refuses what those classes have no argument or class for.
/// </summary>
public class GenerationFamilyTests
{
    private static Image Init => Image.Load(Golden.Path("img2img-init.png"));

    /// <summary>
    /// Text to image on a LatentConsistencyModelPipeline folder runs LatentConsistencyModelPipeline, which has no negative
    /// prompt: one is refused (StableDiffusionPipeline, served before, dropped it silently: an embedded-guidance UNet gets
    /// no guidance batch in diffusers' StableDiffusionPipeline either, so its images were the same).
    /// </summary>
    [Fact]
    public void ALatentConsistencyFolderRunsTextToImageAsLatentConsistencyModelPipelineAndRefusesANegativePrompt()
    {
        using var dir = LatentConsistencyModelPipelineTests.Folder();
        byte[] expected;
        using (var pipe = LatentConsistencyModelPipeline.FromPretrained(dir.Path))
        using (var r = pipe.Generate("a photo of a cat", height: 32, width: 48, numInferenceSteps: 3, guidanceScale: 6.0, numImagesPerPrompt: 2, seed: 7))
            expected = r.Images[1].ToPng();
        using var service = GenerationService.Load(dir.Path);
        var result = service.Generate(new GenerationRequest
        {
            Prompt = "a photo of a cat", Height = 32, Width = 48, Steps = 3, GuidanceScale = 6.0, Count = 2, Seed = 7,
        });
        Assert.Equal(expected, result.Images[1]);
        var negative = Assert.Throws<DiffusersException>(() => service.Generate(new GenerationRequest
        {
            Prompt = "a cat", NegativePrompt = "blurry", Steps = 1, Width = 16, Height = 16, Seed = 0,
        }));
        Assert.Equal(
            $"negative_prompt: {dir.Path} is a latent consistency model, served as LatentConsistencyModelPipeline and " +
            "LatentConsistencyModelImg2ImgPipeline, which take no negative prompt (no guidance batch: the guidance scale is embedded)",
            negative.Message);
    }

    /// <summary>
    /// Image to image on a LatentConsistencyModelPipeline folder runs LatentConsistencyModelImg2ImgPipeline: strength
    /// shortens the LCM schedule (set_timesteps), not StableDiffusionImg2ImgPipeline's get_timesteps.
    /// </summary>
    [Fact]
    public void ALatentConsistencyFolderRunsImageToImageAsLatentConsistencyModelImg2ImgPipeline()
    {
        using var dir = LatentConsistencyModelPipelineTests.Folder();
        byte[] expected;
        using (var pipe = LatentConsistencyModelImg2ImgPipeline.FromPretrained(dir.Path))
        using (var r = pipe.Generate("a red house", Init, numInferenceSteps: 2, strength: 0.5, guidanceScale: 8.5, seed: 3))
            expected = r.Images[0].ToPng();
        using var service = GenerationService.Load(dir.Path);
        var result = service.Generate(new GenerationRequest
        {
            Prompt = "a red house", InitImage = Init, Strength = 0.5, Steps = 2, GuidanceScale = 8.5, Seed = 3,
        });
        Assert.Equal(expected, result.Images[0]);
    }

    [Fact]
    public void ALatentConsistencyImg2ImgFolderRefusesAMaskNamingItsClasses()
    {
        using var dir = LatentConsistencyModelPipelineTests.Folder(LatentConsistencyModelImg2ImgPipeline.Name);
        using var service = GenerationService.Load(dir.Path);
        var mask = Assert.Throws<DiffusersException>(() => service.Generate(new GenerationRequest
        {
            Prompt = "a cat", InitImage = Init, Mask = Init, Steps = 1, Seed = 0,
        }));
        Assert.Equal(
            $"mask: {dir.Path} is a latent consistency model, served as LatentConsistencyModelPipeline (text to image) and " +
            "LatentConsistencyModelImg2ImgPipeline (image to image); diffusers 0.25.1 has no latent consistency inpainting pipeline",
            mask.Message);
    }

    [Fact]
    public void APanoramaFolderRunsTextToImageAsStableDiffusionPanoramaPipeline()
    {
        using var dir = PipelineLoadOptionsTests.Copy(Golden.Path("tiny-sd"));
        StableDiffusionPanoramaPipelineTests.MakePanoramaFolder(dir.Path);
        byte[] expected;
        using (var pipe = StableDiffusionPanoramaPipeline.FromPretrained(dir.Path))
        using (var r = pipe.Generate("a wide valley", height: 16, width: 640, numInferenceSteps: 2, guidanceScale: 5.0,
            negativePrompt: "fog", seed: 11))
            expected = r.Images[0].ToPng();
        using var service = GenerationService.Load(dir.Path);
        var result = service.Generate(new GenerationRequest
        {
            Prompt = "a wide valley", NegativePrompt = "fog", Height = 16, Width = 640, Steps = 2, GuidanceScale = 5.0, Seed = 11,
        });
        Assert.Equal(expected, result.Images[0]);
    }

    [Fact]
    public void APanoramaFolderRefusesAnImageAndCustomTimestepsNamingItsClass()
    {
        using var dir = PipelineLoadOptionsTests.Copy(Golden.Path("tiny-sd"));
        StableDiffusionPanoramaPipelineTests.MakePanoramaFolder(dir.Path);
        using var service = GenerationService.Load(dir.Path);
        var image = Assert.Throws<DiffusersException>(() => service.Generate(new GenerationRequest
        {
            Prompt = "a valley", InitImage = Init, Steps = 1, Seed = 0,
        }));
        Assert.Equal(
            $"image: {dir.Path} is a StableDiffusionPanoramaPipeline folder, served as StableDiffusionPanoramaPipeline: text to image only (no image or mask)",
            image.Message);
        var timesteps = Assert.Throws<DiffusersException>(() => service.Generate(new GenerationRequest
        {
            Prompt = "a valley", Timesteps = [999, 500], Height = 16, Width = 640, Seed = 0,
        }));
        Assert.Equal(
            $"timesteps: {dir.Path} is a StableDiffusionPanoramaPipeline folder, served as StableDiffusionPanoramaPipeline, which takes no custom timesteps (give steps)",
            timesteps.Message);
    }
}
