using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Generation;

/// <summary>The generation service on tests/golden/tiny-sd: same images as the pipeline and as diffusers, progress, previews, cancellation.</summary>
public class GenerationServiceTests(ITestOutputHelper log)
{
    /// <summary>8-bit levels: diffusers' float image vs our PNG (both round the same float image; 1 level for float noise at .5).</summary>
    private const int LevelTolerance = 1;

    internal static string Model => Golden.Path("tiny-sd");

    [Fact]
    public void TheImageMatchesDiffusersGoldenRun()
    {
        using var service = GenerationService.Load(Model);
        var result = service.Generate(new GenerationRequest
        {
            Prompt = "a photo of a cat", NegativePrompt = "", Steps = 5, GuidanceScale = 7.5, Width = 64, Height = 64, Seed = 0,
        });
        var image = Image.Decode(result.Images[0]);
        using var expected = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/pndm_default/images");
        using var e = (expected[0] * 255).round().to(ScalarType.Int32).flatten();
        var levels = e.data<int>().ToArray();
        int max = levels.Select((v, i) => Math.Abs(v - image.Pixels[i])).Max();
        log.WriteLine($"max level difference vs diffusers: {max}");
        Assert.Equal(0L, result.Seed);
        Assert.True(max <= LevelTolerance, $"max level difference {max}");
    }

    [Fact]
    public void TheSameParametersGiveTheSameBytesAsThePipelineWithAnAliasScheduler()
    {
        byte[] expected;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Model))
        {
            using var loaded = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig("EulerAncestralDiscreteScheduler", loaded.Config);
            using var r = pipe.Generate("a red house", "blurry", guidanceScale: 5.0, numImagesPerPrompt: 2, height: 64, width: 48,
                numInferenceSteps: 3, seed: 42);
            expected = r.Images[1].ToPng();
        }
        using var service = GenerationService.Load(Model);
        var request = new GenerationRequest
        {
            Prompt = "a red house", NegativePrompt = "blurry", GuidanceScale = 5.0, Count = 2, Height = 64, Width = 48, Steps = 3,
            Seed = 42, Scheduler = "euler-a",
        };
        // twice: a second request must not inherit the first one's scheduler state
        service.Generate(request);
        var result = service.Generate(request);
        Assert.Equal(2, result.Images.Count);
        Assert.Equal(expected, result.Images[1]);
    }

    [Fact]
    public void EverySchedulerReusedByTheServiceGivesTheBytesOfItsFirstRun()
    {
        // the service keeps one scheduler per kind: a run after other runs (other step counts, other schedulers) must
        // start from a clean state, as a new scheduler does
        using var service = GenerationService.Load(Model);
        GenerationRequest Request(string scheduler, int steps) => new()
        {
            Prompt = "a green boat", GuidanceScale = 4.0, Width = 16, Height = 16, Steps = steps, Seed = 8, Scheduler = scheduler,
        };
        var aliases = SchedulerAliases.Aliases.Keys.ToList();
        var first = aliases.ToDictionary(a => a, a => service.Generate(Request(a, 3)).Images[0]);
        foreach (string a in aliases) service.Generate(Request(a, 2));
        foreach (string a in Enumerable.Reverse(aliases))
            Assert.True(first[a].SequenceEqual(service.Generate(Request(a, 3)).Images[0]), $"{a}: the second run differs from the first");
    }

    [Fact]
    public void AServiceRunWithSeveralSchedulersLeavesTheLiveTensorsAsTheyWereOnceDisposed()
    {
        // the service swaps its schedulers in and out of the pipeline: it owns them all, the model's own included, and a
        // pipeline it builds around the loaded components (image to image here) borrows the one it runs
        static void Cycle()
        {
            using var service = GenerationService.Load(Model);
            var request = new GenerationRequest { Prompt = "a cat", Width = 16, Height = 16, Steps = 2, Seed = 1 };
            service.Generate(request);
            service.Generate(request with { Scheduler = "euler-a" });
            service.Generate(request with { Scheduler = "dpm++2m", InitImage = Image.Load(Golden.Path("img2img-init.png")), Strength = 0.6 });
        }
        Cycle();   // the process's first-pass set-up is not the service's
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Cycle();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void ProgressReportsEveryStepWithPreviewsWhenDue()
    {
        using var service = GenerationService.Load(Model);
        service.PreviewEvery = 2;
        var reports = new List<GenerationProgress>();
        service.Generate(new GenerationRequest { Prompt = "a cat", Steps = 5, Width = 64, Height = 64, Seed = 1, Scheduler = "ddim" },
            new SyncProgress(reports.Add));
        Assert.Equal([1, 2, 3, 4, 5], reports.Select(r => r.Step));
        Assert.All(reports, r => Assert.Equal(5, r.TotalSteps));
        Assert.Equal([false, true, false, true, false], reports.Select(r => r.PreviewPng is not null));
        var preview = Image.Decode(reports[1].PreviewPng!);
        Assert.Equal((64, 64), (preview.Width, preview.Height));
    }

    [Fact]
    public void CancellingStopsTheRunWithinOneStep()
    {
        using var service = GenerationService.Load(Model);
        using var cts = new CancellationTokenSource();
        var steps = new List<int>();
        var e = Assert.ThrowsAny<OperationCanceledException>(() => service.Generate(
            new GenerationRequest { Prompt = "a cat", Steps = 20, Width = 64, Height = 64, Seed = 1 },
            new SyncProgress(p => { steps.Add(p.Step); if (p.Step == 2) cts.Cancel(); }), cts.Token));
        Assert.Equal(cts.Token, e.CancellationToken);   // stopped by the caller's token
        Assert.Equal([1, 2], steps);
        // the service is free again
        Assert.Single(service.Generate(new GenerationRequest { Prompt = "a cat", Steps = 1, Width = 64, Height = 64, Seed = 1 }).Images);
    }

    [Fact]
    public void ARandomSeedIsReportedAndReproducesTheImage()
    {
        using var service = GenerationService.Load(Model);
        var first = service.Generate(new GenerationRequest { Prompt = "a cat", Steps = 1, Width = 64, Height = 64 });
        var again = service.Generate(first.Request);
        Assert.Equal(first.Seed, first.Request.Seed);
        Assert.Equal(first.Images[0], again.Images[0]);
    }

    [Theory]
    [InlineData(60, 64, 1, null, "width: must be a multiple of 8 between 8 and 4096, got 60")]
    [InlineData(64, 64, 0, null, "n: must be between 1 and 16, got 0")]
    [InlineData(64, 64, 1, "nope", "scheduler: unknown scheduler 'nope'; use a class (")]
    public void BadRequestsAreRefusedNamingTheField(int width, int height, int count, string? scheduler, string message)
    {
        var e = Assert.Throws<DiffusersException>(() => GenerationService.Validate(
            new GenerationRequest { Prompt = "x", Width = width, Height = height, Count = count, Scheduler = scheduler }));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void ImageToImageAndInpaintingRunFromTheTextToImageModel()
    {
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        byte[] img2img, inpaint;
        using (var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", init, 0.6, numInferenceSteps: 4, seed: 3))
            img2img = r.Images[0].ToPng();
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", init, mask, numInferenceSteps: 3, seed: 3))
            inpaint = r.Images[0].ToPng();
        using var service = GenerationService.Load(Model);
        Assert.Equal(img2img, service.Generate(new GenerationRequest { Prompt = "a cat", InitImage = init, Strength = 0.6, Steps = 4, Seed = 3 }).Images[0]);
        Assert.Equal(inpaint, service.Generate(new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 3, Seed = 3 }).Images[0]);
    }

    [Fact]
    public void ImageToImageAndInpaintingOnTheTextToImageModelMakeTheTensorsTheyMakeOnTheirOwnModelsAndNoScheduler()
    {
        // the pipeline the service builds around the loaded components borrows the service's scheduler: no scheduler is
        // built per request (it built and disposed one, 4 tensors, at every image-to-image or inpainting request)
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        var img2img = new GenerationRequest { Prompt = "a cat", InitImage = init, Strength = 0.6, Steps = 3, Seed = 3, Scheduler = "euler" };
        var inpaint = new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 2, Seed = 3 };
        static (long Created, byte[] Png) Counted(GenerationService service, GenerationRequest request)
        {
            service.Generate(request);   // the first run's set-up (the scheduler of its kind) is not the request's
            var stats = DisposeScopeManager.Statistics.TensorStatistics;
            long before = stats.CreatedInScopeCount + stats.CreatedOutsideScopeCount, live = stats.ThreadTotalLiveCount;
            var png = service.Generate(request).Images[0];
            Assert.Equal(live, stats.ThreadTotalLiveCount);
            return (stats.CreatedInScopeCount + stats.CreatedOutsideScopeCount - before, png);
        }
        using var text = GenerationService.Load(Model);
        using var own = new GenerationService(StableDiffusionImg2ImgPipeline.FromPretrained(Model), "img2img");
        var (wrapped, wrappedPng) = Counted(text, img2img);
        var (loaded, loadedPng) = Counted(own, img2img);
        Assert.Equal(loadedPng, wrappedPng);
        Assert.Equal(loaded, wrapped);
        using var inpainting = new GenerationService(StableDiffusionInpaintPipeline.FromPretrained(Model), "inpaint");
        (wrapped, wrappedPng) = Counted(text, inpaint);
        (loaded, loadedPng) = Counted(inpainting, inpaint);
        Assert.Equal(loadedPng, wrappedPng);
        Assert.Equal(loaded, wrapped);
    }

    [Fact]
    public void APipelineBuiltAroundTheTextToImageModelRunsTheServicesSchedulerAsItIsWithoutCorrectingItsConfig()
    {
        // a PNDM config with skip_prk_steps false, which only the inpainting constructor corrects: the service's inpainting
        // runs it as it is (as a pipeline it is assigned to), and logs no correction (it logged one it did not apply)
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        static PNDMScheduler WithPrk(IScheduler s) => new((PNDMSchedulerConfig)s.Config with { SkipPrkSteps = false });
        byte[] expected;
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        {
            using (var old = pipe.Scheduler) pipe.Scheduler = WithPrk(old);
            using var r = pipe.Generate("a cat", init, mask, numInferenceSteps: 4, seed: 3);   // PRK warm-up: at least 4
            expected = r.Images[0].ToPng();
        }
        var text = StableDiffusionPipeline.FromPretrained(Model);
        using (var old = text.Scheduler) text.Scheduler = WithPrk(old);
        var logged = new List<string>();
        text.Log = logged.Add;
        using var service = new GenerationService(text, "tiny-sd");
        var result = service.Generate(new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 4, Seed = 3 });
        Assert.Equal(expected, result.Images[0]);
        Assert.Empty(logged);
    }

    [Fact]
    public void AnEditOfAnImageWhoseSizeIsNoMultipleOfTheVaeScaleFactorRunsAtItsSizeRoundedDown()
    {
        // diffusers' img2img rounds its image's size down to a multiple of vae_scale_factor (2 for tiny-sd); the inpaint
        // pipeline refuses such a height. An edit with a mask and no size ran at 65x61 and was refused with "height and
        // width have to be ... divisible by 2 but are 61 and 65", sizes the request never gave
        var init = ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 65, 61);
        var mask = ImageResize.Resize(Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true), 65, 61);
        byte[] expected;
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", init, mask, height: 60, width: 64, numInferenceSteps: 2, seed: 3))
            expected = r.Images[0].ToPng();
        using var service = GenerationService.Load(Model);
        var result = service.Generate(new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 2, Seed = 3 });
        var image = Image.Decode(result.Images[0]);
        Assert.Equal((64, 60), (image.Width, image.Height));
        Assert.Equal(expected, result.Images[0]);
        var tiny = new GenerationRequest { Prompt = "a cat", InitImage = new Image(1, 5, 3, new byte[15]), Mask = new Image(1, 5, 1, new byte[5]), Steps = 2 };
        Assert.Equal("image: the image is 1x5 pixels, smaller than one block of 2 pixels",
            Assert.Throws<DiffusersException>(() => service.Generate(tiny)).Message);
    }

    [Fact]
    public void APaddingMaskCropRequestGivesThePipelinesInpaintingOfTheAreaAroundTheMask()
    {
        // diffusers' padding_mask_crop through the service: the pipeline's bytes at its default size (tiny-sd's 64x64) and at
        // a size the request gives (the crop's size: the image keeps its own), and not the whole-image inpainting
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        byte[] atDefault, wide;
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        {
            using (var r = pipe.Generate("a cat", init, mask, numInferenceSteps: 2, seed: 3, paddingMaskCrop: 4))
                atDefault = r.Images[0].ToPng();
            using (var r = pipe.Generate("a cat", init, mask, height: 32, width: 64, numInferenceSteps: 2, seed: 3, paddingMaskCrop: 0))
                wide = r.Images[0].ToPng();
        }
        using var service = GenerationService.Load(Model);
        var request = new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 2, Seed = 3, PaddingMaskCrop = 4 };
        var cropped = service.Generate(request);
        Assert.Equal(atDefault, cropped.Images[0]);
        Assert.Equal(4, cropped.Request.PaddingMaskCrop);
        Assert.NotEqual(cropped.Images[0], service.Generate(request with { PaddingMaskCrop = null }).Images[0]);
        var atSize = service.Generate(request with { PaddingMaskCrop = 0, Width = 64, Height = 32 }).Images[0];
        Assert.Equal((64, 64), (Image.Decode(atSize).Width, Image.Decode(atSize).Height));
        Assert.Equal(wide, atSize);
    }

    [Fact]
    public void APaddingMaskCropResultRecordsTheSizeTheAreaWasInpaintedAt()
    {
        // the output is the image put back together (its own 64x48 here), so the size the crop ran at is only in the
        // request as run: the pipeline's default (tiny-sd: sample_size 32 x vae scale 2) where the request gave none
        var init = ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 64, 48);
        var mask = ImageResize.Resize(Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true), 64, 48);
        using var service = GenerationService.Load(Model);
        var request = new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 1, Seed = 3, PaddingMaskCrop = 4 };
        var atDefault = service.Generate(request);
        Assert.Equal((64, 48), (Image.Decode(atDefault.Images[0]).Width, Image.Decode(atDefault.Images[0]).Height));
        Assert.Equal((64, 64), (atDefault.Request.Width, atDefault.Request.Height));
        Assert.Equal(atDefault.Images[0], service.Generate(request with { Width = 64, Height = 64 }).Images[0]);
        var atSize = service.Generate(request with { Width = 32 });
        Assert.Equal((32, 64), (atSize.Request.Width, atSize.Request.Height));
        var whole = service.Generate(request with { PaddingMaskCrop = null });   // as before: the size the output shows
        Assert.Equal((null, null), (whole.Request.Width, whole.Request.Height));
    }

    [Fact]
    public void APaddingMaskCropIsRefusedBelowZeroWithoutAMaskAndOnANineChannelUNetInTheLibrarysWords()
    {
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        var request = new GenerationRequest { Prompt = "a cat", InitImage = init, Mask = mask, Steps = 2, Seed = 3, PaddingMaskCrop = -1 };
        Assert.Equal("padding_mask_crop: must be 0 or more (a margin in pixels), got -1",
            Assert.Throws<DiffusersException>(() => GenerationService.Validate(request)).Message);
        foreach (var noMask in new[] { request with { PaddingMaskCrop = 4, Mask = null }, request with { PaddingMaskCrop = 4, Mask = null, InitImage = null } })
            Assert.Equal("padding_mask_crop: inpaints the area around the mask; give an image and a mask (an edit)",
                Assert.Throws<DiffusersException>(() => GenerationService.Validate(noMask)).Message);
        using var folder = Pipelines.StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var service = GenerationService.Load(folder.Path);
        Assert.Equal("StableDiffusionInpaintPipeline: The UNet should have 4 input channels for inpainting mask crop, but has 9 input channels.",
            Assert.Throws<DiffusersException>(() => service.Generate(request with { PaddingMaskCrop = 4 })).Message);
    }

    [Fact]
    public void TheLatentRgbPreviewMapsEachLatentPixelByTheFactors()
    {
        // one latent pixel per channel set: channel 0 = 1 → rgb = row 0 of the factors → ((f + 1) * 127.5) rounded
        using var latents = torch.zeros(1, 4, 1, 2);
        latents[0, 0, 0, 0] = torch.tensor(1f);
        latents[0, 3, 0, 1] = torch.tensor(-1f);
        var image = LatentRgbPreview.Preview(latents);
        Assert.Equal((16, 8), (image.Width, image.Height));
        Assert.Equal(new byte[] { 172, 157, 169 }, new[] { image[0, 0, 0], image[0, 0, 1], image[0, 0, 2] });   // 0.3512, 0.2297, 0.3227
        Assert.Equal(new byte[] { 155, 161, 219 }, new[] { image[15, 7, 0], image[15, 7, 1], image[15, 7, 2] }); // 0.2120, 0.2616, 0.7177
    }

    [Fact]
    public void TheSdxlLatentRgbPreviewUsesTheSdxlFactors()
    {
        // ComfyUI's SDXL latent2rgb rows: channel 0 = 1 → (0.3920, 0.4054, 0.4549), channel 3 = -1 → (0.3112, 0.2359, 0.2076)
        using var latents = torch.zeros(1, 4, 1, 2);
        latents[0, 0, 0, 0] = torch.tensor(1f);
        latents[0, 3, 0, 1] = torch.tensor(-1f);
        var image = LatentRgbPreview.Preview(latents, upscale: 1, space: LatentSpace.StableDiffusionXL);
        Assert.Equal(new byte[] { 177, 179, 185 }, new[] { image[0, 0, 0], image[0, 0, 1], image[0, 0, 2] });
        Assert.Equal(new byte[] { 167, 158, 154 }, new[] { image[1, 0, 0], image[1, 0, 1], image[1, 0, 2] });
    }

    [Fact]
    public void TheLatentRgbPreviewRefusesAValueThatIsNoLatentSpaceNamingIt()
    {
        // was a KeyNotFoundException ("The given key '7' was not present in the dictionary"), as TaesdIdFor refuses it
        using var latents = torch.zeros(1, 4, 1, 2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => LatentRgbPreview.Preview(latents, space: (LatentSpace)7));
        Assert.Equal("space", e.ParamName);
        Assert.StartsWith("not a latent space", e.Message);
    }

    [Fact]
    public void WithATinyVaeThePreviewIsItsDecodeOfTheStepsLatents()
    {
        using var taesd = DiffusersSharp.Models.AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));
        var preview = new TaesdPreview(taesd);
        byte[]? expected = null;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Model))
        {
            using var loaded = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig("DDIMScheduler", loaded.Config);
            using var _ = pipe.Generate("a cat", numInferenceSteps: 3, height: 64, width: 64, seed: 8,
                callbackOnStepEnd: preview.Every(2, (step, t, image) => expected = image.ToPng()));
        }
        using var service = GenerationService.Load(Model);
        service.PreviewEvery = 2;
        service.Taesd = preview;
        var reports = new List<GenerationProgress>();
        service.Generate(new GenerationRequest { Prompt = "a cat", Steps = 3, Width = 64, Height = 64, Seed = 8, Scheduler = "ddim" },
            new SyncProgress(reports.Add));
        Assert.NotNull(expected);
        Assert.Equal(expected, reports[1].PreviewPng);
    }

    /// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    internal sealed class SyncProgress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }
}
