using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;

#pragma warning disable MEAI001 // the image API of Microsoft.Extensions.AI is experimental

namespace DiffusersSharp.Tests.Generation;

/// <summary>
/// <see cref="GenerationRequest.IPAdapterImage"/> / <see cref="GenerationRequest.IPAdapterScale"/> with an adapter the
/// service loaded once (<see cref="GenerationService.LoadIPAdapter"/>), and <see cref="GenerationRequest.Timesteps"/>, on
/// tests/golden/tiny-sd and tiny-sdxl: the bytes of a direct pipeline call with the same settings (the pipelines are checked
/// against diffusers in IPAdapterPipelineTests and CustomTimestepsPipelineTests); the adapter's scale comes back after a
/// request's own, also when the run fails or is cancelled; the refusals name the field.
/// </summary>
public class GenerationIPAdapterTests
{
    private static string Model => GenerationServiceTests.Model;

    internal static readonly IPAdapterSource Basic = new(Golden.Path("ip-adapter"), null, "ip-adapter-basic.safetensors");

    internal static Image IPImage => Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png"));

    internal static GenerationRequest Plain => GenerationFreeUTests.Plain;

    /// <summary>The pipeline's images of <see cref="Plain"/> with the basic adapter and <see cref="IPImage"/>, at each scale.</summary>
    internal static byte[][] PipelineBytes(params double[] scales)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), null, "ip-adapter-basic.safetensors");
        return scales.Select(scale =>
        {
            pipe.SetIPAdapterScale(scale);
            using var r = pipe.Generate("a red house", height: 64, width: 64, numInferenceSteps: 3, seed: 5, ipAdapterImage: IPImage);
            return r.Images[0].ToPng();
        }).ToArray();
    }

    [Fact]
    public void AnImagePromptGivesThePipelinesBytesAndARequestsScaleIsPutBackAfterIt()
    {
        var expected = PipelineBytes(1.0, 0.6);
        using var service = GenerationService.Load(Model);
        Assert.False(service.HasIPAdapter);
        service.LoadIPAdapter(Basic);
        Assert.True(service.HasIPAdapter);
        Assert.Equal(Basic, service.IPAdapter);
        var withImage = Plain with { IPAdapterImage = IPImage };

        Assert.Equal(expected[0], service.Generate(withImage).Images[0]);
        var scaled = service.Generate(withImage with { IPAdapterScale = 0.6 });
        Assert.Equal(expected[1], scaled.Images[0]);
        Assert.Equal(0.6, scaled.Request.IPAdapterScale);
        Assert.Equal(expected[0], service.Generate(withImage).Images[0]);   // back at 1

        // the service's own scale is what a request without one runs at, and what comes back after one with its own
        service.SetIPAdapterScale(0.6);
        Assert.Equal(expected[1], service.Generate(withImage).Images[0]);
        Assert.Equal(expected[0], service.Generate(withImage with { IPAdapterScale = 1.0 }).Images[0]);
        Assert.Equal(expected[1], service.Generate(withImage).Images[0]);
    }

    [Fact]
    public void ARequestsScaleIsPutBackWhenItsRunFailsOrIsCancelled()
    {
        byte[] atOne = PipelineBytes(1.0)[0];
        using var service = GenerationService.Load(Model);
        service.LoadIPAdapter(Basic);
        var withImage = Plain with { IPAdapterImage = IPImage };

        var e = Assert.Throws<InvalidOperationException>(() => service.Generate(withImage with { IPAdapterScale = 0.3 },
            new GenerationServiceTests.SyncProgress(_ => throw new InvalidOperationException("the caller's progress failed"))));
        Assert.Equal("the caller's progress failed", e.Message);
        Assert.Equal(atOne, service.Generate(withImage).Images[0]);

        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => service.Generate(withImage with { IPAdapterScale = 0.3 },
            new GenerationServiceTests.SyncProgress(p => { if (p.Step == 2) cts.Cancel(); }), cts.Token));
        Assert.Equal(atOne, service.Generate(withImage).Images[0]);
    }

    [Fact]
    public void ImagePromptsAreRefusedWithoutAnAdapterAndRequiredWithOne()
    {
        using var service = GenerationService.Load(Model);
        var e = Assert.Throws<DiffusersException>(() => service.Generate(Plain with { IPAdapterImage = IPImage }));
        Assert.Equal("ip_adapter_image: no IP-Adapter is loaded for this model (serve --ip-adapter FILE; GenerationService.LoadIPAdapter), so it cannot take an image prompt", e.Message);
        e = Assert.Throws<DiffusersException>(() => service.SetIPAdapterScale(0.5));
        Assert.Equal($"ip_adapter_scale: {Model} has no IP-Adapter loaded (LoadIPAdapter first)", e.Message);

        service.LoadIPAdapter(Basic);
        e = Assert.Throws<DiffusersException>(() => service.Generate(Plain));
        Assert.Equal("ip_adapter_image: is required: this model has an IP-Adapter loaded, and diffusers 0.25.1 runs a pipeline with an IP-Adapter only with an image prompt (its UNet requires image_embeds), as generate --ip-adapter needs --ip-adapter-image", e.Message);

        // a file that is not there leaves the loaded adapter as it was
        var missing = new IPAdapterSource(Golden.Path("ip-adapter"), null, "no-such-adapter.safetensors");
        Assert.ThrowsAny<DiffusersException>(() => service.LoadIPAdapter(missing));
        Assert.Equal(Basic, service.IPAdapter);
        Assert.True(service.HasIPAdapter);
    }

    [Theory]
    [InlineData(double.NaN, true, "ip_adapter_scale: must be a number between -100 and 100, got NaN")]
    [InlineData(101.0, true, "ip_adapter_scale: must be a number between -100 and 100, got 101")]
    [InlineData(0.5, false, "ip_adapter_scale: needs an ip_adapter_image (the image prompt it weighs)")]
    public void ABadScaleIsRefusedNamingIt(double scale, bool withImage, string message)
    {
        var request = Plain with { IPAdapterScale = scale, IPAdapterImage = withImage ? IPImage : null };
        var e = Assert.Throws<DiffusersException>(() => GenerationService.Validate(request));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void CustomTimestepsGiveThePipelinesBytesForTextToImageAndImageToImage()
    {
        long[] timesteps = [900, 700, 450, 200, 50];
        var init = Image.LoadImage(Golden.Path("img2img-init.png"));
        byte[] text, img2img;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Model))
        {
            using var own = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(DDPMScheduler.Name, own.Config);
            using (var r = pipe.Generate("a red house", height: 64, width: 64, seed: 5, timesteps: timesteps)) text = r.Images[0].ToPng();
            var i2i = new StableDiffusionImg2ImgPipeline(pipe, pipe.Scheduler);   // borrows the components: not disposed
            using (var r = i2i.Generate("a red house", init, strength: 0.6, seed: 5, timesteps: timesteps)) img2img = r.Images[0].ToPng();
        }
        using var service = GenerationService.Load(Model);
        var request = Plain with { Scheduler = DDPMScheduler.Name, Timesteps = timesteps };
        var result = service.Generate(request);
        Assert.Equal(text, result.Images[0]);
        Assert.Equal(5, result.Request.Steps);   // the timesteps set the steps; Plain's 3 is not used
        Assert.Equal(img2img, service.Generate(request with { InitImage = init, Strength = 0.6, Width = null, Height = null }).Images[0]);
    }

    [Fact]
    public void CustomTimestepsAreRefusedWithTheSchedulersMessages()
    {
        using var service = GenerationService.Load(Model);
        // tiny-sd's own PNDMScheduler takes no custom timesteps (diffusers' retrieve_timesteps refusal)
        var e = Assert.Throws<DiffusersException>(() => service.Generate(Plain with { Timesteps = [999, 500] }));
        Assert.Equal("StableDiffusionPipeline: The current scheduler class PNDMScheduler's `set_timesteps` does not support custom timestep schedules. Please check whether you are using the correct scheduler.", e.Message);
        e = Assert.Throws<DiffusersException>(() => service.Generate(Plain with { Scheduler = "lcm", Timesteps = [200, 700] }));
        Assert.Equal("StableDiffusionPipeline: timesteps: LCMScheduler: custom timesteps must be in descending order; 700 follows 200", e.Message);
        e = Assert.Throws<DiffusersException>(() => GenerationService.Validate(Plain with { Timesteps = [] }));
        Assert.Equal("timesteps: give between 1 and 1000 timesteps (or none, to use steps), got 0", e.Message);
    }

    /// <summary>SDXL: the adapter of ip-adapter/sdxl (the encoder set on the pipeline first, as its folder has none) and LCM timesteps in one request.</summary>
    [Fact]
    public void AnSdxlServiceTakesAnImagePromptWithCustomTimesteps()
    {
        long[] timesteps = [999, 759, 499, 259];
        var encoder = Golden.Path("ip-adapter", "image_encoder");
        byte[] expected;
        using (var pipe = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl")))
        {
            using var own = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(LCMScheduler.Name, own.Config);
            pipe.ImageEncoder = CLIPVisionModelWithProjection.FromPretrained(encoder);
            pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "sdxl", "ip-adapter-sdxl-basic.safetensors");
            pipe.SetIPAdapterScale(0.7);
            using var r = pipe.Generate("a red house", height: 64, width: 64, guidanceScale: 1.0, seed: 5, timesteps: timesteps,
                ipAdapterImage: IPImage);
            expected = r.Images[0].ToPng();
        }
        using var service = GenerationService.Load(Golden.Path("tiny-sdxl"));
        ((IIPAdapterPipeline)service.Pipeline).ImageEncoder = CLIPVisionModelWithProjection.FromPretrained(encoder);
        service.LoadIPAdapter(new IPAdapterSource(Golden.Path("ip-adapter"), "sdxl", "ip-adapter-sdxl-basic.safetensors"));
        var result = service.Generate(Plain with
        {
            GuidanceScale = 1.0,
            Scheduler = "lcm",
            Timesteps = timesteps,
            IPAdapterImage = IPImage,
            IPAdapterScale = 0.7,
        });
        Assert.Equal(expected, result.Images[0]);
    }
}

/// <summary>The IImageGenerator's IP-Adapter options and its <c>ip_adapter_image</c>, <c>ip_adapter_scale</c> and <c>timesteps</c> properties.</summary>
public class DiffusersImageGeneratorIPAdapterTests
{
    [Fact]
    public async Task TheImagePromptPropertiesGiveThePipelinesBytesAndTheOptionsScaleComesBack()
    {
        var expected = GenerationIPAdapterTests.PipelineBytes(1.0, 0.6);
        using var generator = new Extensions.AI.DiffusersImageGenerator(new Extensions.AI.DiffusersImageGeneratorOptions
        {
            Model = GenerationServiceTests.Model, IPAdapter = GenerationIPAdapterTests.Basic, IPAdapterScale = 0.6,
        });
        var png = File.ReadAllBytes(Golden.Path("ip-adapter", "ip-image.png"));
        async Task<byte[]> Run(params (string Key, object Value)[] extra)
        {
            var props = new Microsoft.Extensions.AI.AdditionalPropertiesDictionary { ["seed"] = 5, ["steps"] = 3 };
            foreach (var (k, v) in extra) props[k] = v;
            var response = await generator.GenerateAsync(new Microsoft.Extensions.AI.ImageGenerationRequest("a red house"),
                new Microsoft.Extensions.AI.ImageGenerationOptions { ImageSize = new System.Drawing.Size(64, 64), AdditionalProperties = props });
            return Assert.IsType<Microsoft.Extensions.AI.DataContent>(Assert.Single(response.Contents)).Data.ToArray();
        }
        Assert.Equal(expected[1], await Run(("ip_adapter_image", new Microsoft.Extensions.AI.DataContent(png, "image/png"))));
        Assert.Equal(expected[0], await Run(("ip_adapter_image", png), ("ip_adapter_scale", 1.0)));
        Assert.Equal(expected[1], await Run(("ip_adapter_image", png)));

        var e = await Assert.ThrowsAsync<ArgumentException>(() => Run());
        Assert.StartsWith("ip_adapter_image: is required: this model has an IP-Adapter loaded", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => Run(("ip_adapter_image", png), ("timesteps", "999,759,499,259")));
        Assert.Equal("AdditionalProperties 'timesteps': 4 custom timesteps set 4 steps, and 'steps' is 3; leave 'steps' out (diffusers' timesteps replace num_inference_steps) (Parameter 'timesteps')", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => Run(("ip_adapter_image", png), ("timesteps", new object[] { 999, 759.5 })));
        Assert.Equal("AdditionalProperties 'timesteps': expected an integer, got 759.5 (not rounded) (Parameter 'timesteps')", e.Message);
    }
}
