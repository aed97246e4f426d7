using DiffusersSharp.Extensions.AI;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

#pragma warning disable MEAI001 // the image API of Microsoft.Extensions.AI is experimental

namespace DiffusersSharp.Tests.Generation;

/// <summary>IImageGenerator on tests/golden/tiny-sd: the library's bytes, options and AdditionalProperties, cancellation, DI.</summary>
public class DiffusersImageGeneratorTests
{
    private static string Model => GenerationServiceTests.Model;

    [Fact]
    public async Task TheSameParametersGiveTheLibrarysBytes()
    {
        byte[] expected;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a blue car", "dark", guidanceScale: 6.0, height: 64, width: 64, numInferenceSteps: 2, seed: 11))
            expected = r.Images[0].ToPng();
        using var generator = new DiffusersImageGenerator(new DiffusersImageGeneratorOptions { Model = Model });
        var options = new ImageGenerationOptions
        {
            Count = 1, ImageSize = new System.Drawing.Size(64, 64), MediaType = "image/png", ResponseFormat = ImageGenerationResponseFormat.Data,
            AdditionalProperties = new() { ["seed"] = 11, ["steps"] = 2, ["guidance_scale"] = 6.0, ["negative_prompt"] = "dark" },
        };
        var response = await generator.GenerateAsync(new ImageGenerationRequest("a blue car"), options);
        var data = Assert.IsType<DataContent>(Assert.Single(response.Contents));
        Assert.Equal("image/png", data.MediaType);
        Assert.Equal(expected, data.Data.ToArray());
        Assert.Equal(11L, data.AdditionalProperties!["seed"]);
    }

    [Fact]
    public async Task AnOriginalImageMakesItImageToImage()
    {
        var init = Image.Load(Golden.Path("img2img-init.png"));
        byte[] expected;
        using (var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", init, 0.5, numInferenceSteps: 4, seed: 5))
            expected = r.Images[0].ToPng();
        using var generator = new DiffusersImageGenerator(new DiffusersImageGeneratorOptions { Model = Model });
        var response = await generator.EditImageAsync(new DataContent(File.ReadAllBytes(Golden.Path("img2img-init.png")), "image/png"), "a cat",
            new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 5L, ["steps"] = 4, ["strength"] = 0.5 } });
        Assert.Equal(expected, ((DataContent)response.Contents[0]).Data.ToArray());
    }

    [Fact]
    public async Task CancellationStopsWithinOneStep()
    {
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        using var cts = new CancellationTokenSource();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var run = generator.GenerateAsync(new ImageGenerationRequest("a cat"),
            new ImageGenerationOptions { ImageSize = new System.Drawing.Size(64, 64), AdditionalProperties = new() { ["steps"] = 500 } }, cts.Token);
        await Task.Delay(300);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task ACallWaitingItsTurnIsCancelledWithoutWaitingForTheRunBeforeIt()
    {
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        var options = new ImageGenerationOptions { ImageSize = new System.Drawing.Size(64, 64), AdditionalProperties = new() { ["steps"] = 900 } };
        using var first = new CancellationTokenSource();
        var running = generator.GenerateAsync(new ImageGenerationRequest("a cat"), options, first.Token);
        using var second = new CancellationTokenSource();
        var waiting = generator.GenerateAsync(new ImageGenerationRequest("a dog"), options, second.Token);
        await Task.Delay(300);   // the second call is waiting its turn
        second.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.False(running.IsCompleted, "the waiting call saw its cancellation only after the run before it ended");
        first.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
    }

    [Fact]
    public async Task AMaskInOpenAisConventionRepaintsItsTransparentArea()
    {
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var area = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        area = area.Width == init.Width && area.Height == init.Height ? area : ImageResize.Resize(area, init.Width, init.Height);
        bool Repaint(int x, int y) => area.Pixels[y * init.Width + x] >= 128;
        byte[] white = Server.ServerRequestTests.Png(init.Width, init.Height, (x, y) => Repaint(x, y) ? ((byte)255, (byte)255, (byte)255, (byte)255) : ((byte)0, (byte)0, (byte)0, (byte)255));
        byte[] transparent = Server.ServerRequestTests.Png(init.Width, init.Height, (x, y) => Repaint(x, y) ? ((byte)0, (byte)0, (byte)0, (byte)0) : ((byte)0, (byte)0, (byte)0, (byte)255));
        // the library's inpainting of that area (diffusers' convention: white = repaint), so that a mask the generator
        // dropped or read the wrong way round (then both runs below would still be equal) fails here
        byte[] expected;
        var areaMask = new Image(init.Width, init.Height, 1, Enumerable.Range(0, init.Width * init.Height).Select(i => Repaint(i % init.Width, i / init.Width) ? (byte)255 : (byte)0).ToArray());
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", Image.LoadImage(File.ReadAllBytes(Golden.Path("img2img-init.png"))), areaMask, numInferenceSteps: 2, seed: 5))
            expected = r.Images[0].ToPng();
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        async Task<byte[]> Inpaint(byte[] mask)
        {
            var response = await generator.EditImageAsync(new DataContent(File.ReadAllBytes(Golden.Path("img2img-init.png")), "image/png"), "a cat",
                new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 5L, ["steps"] = 2, ["mask"] = new DataContent(mask, "image/png") } });
            return ((DataContent)response.Contents[0]).Data.ToArray();
        }
        Assert.Equal(expected, await Inpaint(transparent));
        Assert.Equal(expected, await Inpaint(white));
    }

    [Fact]
    public async Task PaddingMaskCropInpaintsTheAreaAroundTheMaskAsThePipelineDoes()
    {
        byte[] initPng = File.ReadAllBytes(Golden.Path("img2img-init.png")), maskPng = File.ReadAllBytes(Golden.Path("inpaint-mask.png"));
        byte[] expected;
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Model))
        using (var r = pipe.Generate("a cat", Image.LoadImage(initPng), MaskImage.Decode(maskPng), numInferenceSteps: 2, seed: 5, paddingMaskCrop: 4))
            expected = r.Images[0].ToPng();
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        async Task<byte[]> Inpaint(int? pad)
        {
            var props = new AdditionalPropertiesDictionary { ["seed"] = 5L, ["steps"] = 2, ["mask"] = new DataContent(maskPng, "image/png") };
            if (pad is int p) props[DiffusersImageGenerator.PaddingMaskCrop] = p;
            var response = await generator.EditImageAsync(new DataContent(initPng, "image/png"), "a cat", new ImageGenerationOptions { AdditionalProperties = props });
            return ((DataContent)response.Contents[0]).Data.ToArray();
        }
        byte[] cropped = await Inpaint(4);
        Assert.Equal(expected, cropped);
        Assert.NotEqual(cropped, await Inpaint(null));
        var e = await Assert.ThrowsAsync<ArgumentException>(() => generator.EditImageAsync(new DataContent(initPng, "image/png"), "a cat",
            new ImageGenerationOptions { AdditionalProperties = new() { ["padding_mask_crop"] = 4 } }));
        Assert.StartsWith("padding_mask_crop: inpaints the area around the mask; give an image and a mask (an edit)", e.Message);
    }

    [Fact]
    public void AnOriginalImageAndMaskAreTurnedUprightByTheirExifOrientation()
    {
        // photo-6.jpg (stored 32x16, EXIF orientation 6) and photo-mask-8.png against PIL's exif_transpose of each (16x32):
        // the request holds the upright images, as diffusers' load_image reads them
        string E(string file) => Golden.Path("exif-orientation", file);
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        GenerationRequest Request(string image, string mask) => generator.ToGenerationRequest(
            new ImageGenerationRequest("a cat", [new DataContent(File.ReadAllBytes(E(image)), "image/jpeg")]),
            new ImageGenerationOptions { AdditionalProperties = new() { ["mask"] = new DataContent(File.ReadAllBytes(E(mask)), "image/png") } });
        var oriented = Request("photo-6.jpg", "photo-mask-8.png");
        var upright = Request("photo-6-upright.png", "photo-mask-8-upright.png");
        Assert.Equal((16, 32), (oriented.InitImage!.Width, oriented.InitImage.Height));
        Assert.Equal(upright.InitImage!.Pixels, oriented.InitImage.Pixels);
        Assert.Equal((16, 32), (oriented.Mask!.Width, oriented.Mask.Height));
        Assert.Equal(upright.Mask!.Pixels, oriented.Mask.Pixels);
    }

    [Fact]
    public async Task BadOptionsAreRefusedNamingTheProperty()
    {
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateImagesAsync("x", new ImageGenerationOptions { ModelId = "other" }));
        Assert.StartsWith($"ModelId 'other': this generator serves '{Model}'", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateImagesAsync("x", new ImageGenerationOptions { ImageSize = new System.Drawing.Size(60, 64) }));
        Assert.StartsWith("width: must be a multiple of 8 between 8 and 4096, got 60", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateImagesAsync("x",
            new ImageGenerationOptions { AdditionalProperties = new() { ["loras"] = new[] { "style" } } }));
        Assert.StartsWith("loras: this server has no LoRA directory (serve --lora-dir), so it cannot apply style", e.Message);
    }

    private static GenerationRequest WithProperty(DiffusersImageGenerator generator, string key, object value) =>
        generator.ToGenerationRequest(new ImageGenerationRequest("a cat"), new ImageGenerationOptions { AdditionalProperties = new() { [key] = value } });

    private static void Refused(DiffusersImageGenerator generator, string key, object value, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => WithProperty(generator, key, value));
        Assert.Equal(key, e.ParamName);
        Assert.Equal($"{message} (Parameter '{key}')", e.Message);
    }

    [Fact]
    public void AFractionForAnIntegerPropertyIsRefusedNotRounded()
    {
        // Convert.ChangeType rounded these (4.5 → 4 steps, banker's rounding) and ran with another value than asked for
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        var json = System.Text.Json.JsonDocument.Parse("[4.5]").RootElement;
        Refused(generator, "steps", 4.5, "AdditionalProperties 'steps': expected an integer, got 4.5 (not rounded)");
        Refused(generator, "padding_mask_crop", 4.5f, "AdditionalProperties 'padding_mask_crop': expected an integer, got 4.5 (not rounded)");
        Refused(generator, "seed", 7.25m, "AdditionalProperties 'seed': expected an integer, got 7.25 (not rounded)");
        Refused(generator, "seed", 0.5, "AdditionalProperties 'seed': expected an integer, got 0.5 (not rounded)");
        Refused(generator, "steps", double.NaN, "AdditionalProperties 'steps': expected an integer, got NaN (not rounded)");
        Refused(generator, "steps", double.PositiveInfinity, "AdditionalProperties 'steps': expected an integer, got Infinity (not rounded)");
        Refused(generator, "steps", json[0], "AdditionalProperties 'steps': expected an integer, got 4.5 (not rounded)");
        Refused(generator, "steps", "4.5", "AdditionalProperties 'steps': expected an integer, got '4.5' (not rounded)");
        Refused(generator, "steps", true, "AdditionalProperties 'steps': expected an integer, got Boolean True");
    }

    [Fact]
    public void IntegerPropertiesTakeWholeNumbersOfAnyTypeWithinTheirRange()
    {
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        GenerationRequest Request(string key, object value) => WithProperty(generator, key, value);
        var json = System.Text.Json.JsonDocument.Parse("[4, 4.0, 3000000000, 1e30, \"4\"]").RootElement;
        foreach (var v in new object[] { 4, 4L, (short)4, (byte)4, 4u, 4UL, 4.0, 4.0f, 4.0m, "4", " 4 ", json[0], json[1] })
        {
            Assert.Equal(4, Request("steps", v).Steps);
            Assert.Equal(4, Request("padding_mask_crop", v).PaddingMaskCrop);
            Assert.Equal(4L, Request("seed", v).Seed);
        }
        Assert.Equal(3000000000L, Request("seed", 3000000000.0).Seed);
        Assert.Equal(-5L, Request("seed", -5.0).Seed);
        Assert.Equal(long.MaxValue, Request("seed", long.MaxValue).Seed);
        Assert.Equal(long.MaxValue, Request("seed", (ulong)long.MaxValue).Seed);
        Assert.Equal(int.MaxValue, Request("steps", (double)int.MaxValue).Steps);

        // a JSON string as the .NET string it holds (AJsonStringIsReadAsTheDotNetStringItHolds); out of the option's range, whatever the type
        Assert.Equal(4, Request("steps", json[4]).Steps);
        const string IntRange = "(-2147483648 to 2147483647)", LongRange = "(-9223372036854775808 to 9223372036854775807)";
        Refused(generator, "steps", 3000000000L, $"AdditionalProperties 'steps': 3000000000 is out of range {IntRange}");
        Refused(generator, "steps", 3e9, $"AdditionalProperties 'steps': 3000000000 is out of range {IntRange}");
        Refused(generator, "padding_mask_crop", json[2], $"AdditionalProperties 'padding_mask_crop': 3000000000 is out of range {IntRange}");
        Refused(generator, "steps", "3000000000", $"AdditionalProperties 'steps': '3000000000' is out of range {IntRange}");
        Refused(generator, "seed", ulong.MaxValue, $"AdditionalProperties 'seed': 18446744073709551615 is out of range {LongRange}");
        Refused(generator, "seed", 9223372036854775808.0, $"AdditionalProperties 'seed': 9.223372036854776E+18 is out of range {LongRange}");
        Refused(generator, "seed", json[3], $"AdditionalProperties 'seed': 1e30 is out of range {LongRange}");
        Refused(generator, "seed", 1e28m, $"AdditionalProperties 'seed': 10000000000000000000000000000 is out of range {LongRange}");
    }

    [Fact]
    public void AJsonStringIsReadAsTheDotNetStringItHolds()
    {
        // a JsonElement string "4" was refused ("expected an integer, got JSON String \"4\"") where the .NET string "4" is read,
        // as Microsoft.Extensions.AI's own TryGetValue<T> converts it (IConvertible; a JsonElement it does not convert at all)
        var meai = new AdditionalPropertiesDictionary { ["net"] = "4", ["json"] = System.Text.Json.JsonDocument.Parse("\"4\"").RootElement };
        Assert.True(meai.TryGetValue("net", out int fromNet));
        Assert.Equal(4, fromNet);
        Assert.False(meai.TryGetValue("json", out int _));

        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        var json = System.Text.Json.JsonDocument.Parse("[\"4\", \" 4 \", \"7.5\", \"4.5\", \"four\", \"3000000000\", \"\", \"a cat\"]").RootElement;
        foreach (var v in new object[] { "4", json[0], " 4 ", json[1] })
        {
            Assert.Equal(4, WithProperty(generator, "steps", v).Steps);
            Assert.Equal(4, WithProperty(generator, "padding_mask_crop", v).PaddingMaskCrop);
            Assert.Equal(4L, WithProperty(generator, "seed", v).Seed);
        }
        Assert.Equal(7.5, WithProperty(generator, "guidance_scale", json[2]).GuidanceScale);
        Assert.Equal(7.5, WithProperty(generator, "guidance_scale", "7.5").GuidanceScale);
        Assert.Equal("a cat", WithProperty(generator, "negative_prompt", json[7]).NegativePrompt);

        // a fraction, other text or a number out of range: refused naming the property, in the same words for both forms
        const string IntRange = "(-2147483648 to 2147483647)";
        foreach (var (text, element) in new[] { ("4.5", json[3]), ("four", json[4]), ("", json[6]) })
        {
            Refused(generator, "steps", text, $"AdditionalProperties 'steps': expected an integer, got '{text}' (not rounded)");
            Refused(generator, "steps", element, $"AdditionalProperties 'steps': expected an integer, got '{text}' (not rounded)");
            Refused(generator, "seed", element, $"AdditionalProperties 'seed': expected an integer, got '{text}' (not rounded)");
        }
        Refused(generator, "padding_mask_crop", json[5], $"AdditionalProperties 'padding_mask_crop': '3000000000' is out of range {IntRange}");
        Refused(generator, "guidance_scale", "four", "AdditionalProperties 'guidance_scale': cannot read four as Double");
        Refused(generator, "guidance_scale", json[4], "AdditionalProperties 'guidance_scale': cannot read four as Double");

        // loras as a string, or a JSON value of another shape, is told in words, not as "Dictionary`2"
        Refused(generator, "loras", json[7], "AdditionalProperties 'loras': expected an object of names to weights or a list of names, got String a cat");
        Refused(generator, "loras", System.Text.Json.JsonDocument.Parse("{\"a\": \"x\"}").RootElement,
            "AdditionalProperties 'loras': cannot read {\"a\": \"x\"} as an object of names to weights or a list of names");
    }

    [Fact]
    public void LorasTakeAJsonListOfNamesAsTheDotNetList()
    {
        // the refusal says "or a list of names", and the server takes a JSON list; a JsonElement array (what properties
        // deserialized from JSON hold) was refused: "cannot read ["style", "ink"] as an object of names to weights or a list of names"
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        var list = System.Text.Json.JsonDocument.Parse("[\"style\", \"ink\"]").RootElement;
        Assert.Equal(new Dictionary<string, double> { ["style"] = 1.0, ["ink"] = 1.0 }, WithProperty(generator, "loras", list).Loras);
        Assert.Equal(new Dictionary<string, double> { ["style"] = 1.0 }, WithProperty(generator, "loras", new[] { "style" }).Loras);
        // a name twice is refused naming the property in both forms (the .NET list died in ToDictionary: "An item with the
        // same key has already been added")
        Refused(generator, "loras", new[] { "style", "style" }, "AdditionalProperties 'loras': 'style' is given twice");
        Refused(generator, "loras", System.Text.Json.JsonDocument.Parse("[\"style\", \"style\"]").RootElement,
            "AdditionalProperties 'loras': 'style' is given twice");
        // a list of anything else is still refused
        Refused(generator, "loras", System.Text.Json.JsonDocument.Parse("[1]").RootElement,
            "AdditionalProperties 'loras': cannot read [1] as an object of names to weights or a list of names");
    }

    [Fact]
    public void IntegerPropertiesTakeTheOtherNumericTypesToo()
    {
        // "a whole number of any numeric type": nint, Int128, BigInteger and Half were refused ("expected an integer, got Half 4")
        using var service = GenerationService.Load(Model);
        using var generator = new DiffusersImageGenerator(service);
        foreach (var v in new object[] { (nint)4, (nuint)4, (Int128)4, (UInt128)4, new System.Numerics.BigInteger(4), (Half)4 })
        {
            Assert.Equal(4, WithProperty(generator, "steps", v).Steps);
            Assert.Equal(4L, WithProperty(generator, "seed", v).Seed);
        }
        const string IntRange = "(-2147483648 to 2147483647)", LongRange = "(-9223372036854775808 to 9223372036854775807)";
        Refused(generator, "steps", (Half)4.5, "AdditionalProperties 'steps': expected an integer, got 4.5 (not rounded)");
        Refused(generator, "steps", (Int128)3000000000, $"AdditionalProperties 'steps': 3000000000 is out of range {IntRange}");
        Refused(generator, "seed", (Int128)long.MaxValue + 1, $"AdditionalProperties 'seed': 9223372036854775808 is out of range {LongRange}");
        Refused(generator, "seed", UInt128.MaxValue, $"AdditionalProperties 'seed': 340282366920938463463374607431768211455 is out of range {LongRange}");
        Refused(generator, "seed", System.Numerics.BigInteger.Pow(10, 30), $"AdditionalProperties 'seed': 1000000000000000000000000000000 is out of range {LongRange}");
        Refused(generator, "seed", nuint.MaxValue, $"AdditionalProperties 'seed': 18446744073709551615 is out of range {LongRange}");
    }

    [Fact]
    public async Task DependencyInjectionComposesWithLoggingAndOpenTelemetry()
    {
        var services = new ServiceCollection();
        services.AddSingleton<Microsoft.Extensions.Logging.ILoggerFactory>(NullLoggerFactory.Instance);
        services.AddDiffusersImageGenerator(o => o.Model = Model).UseLogging().UseOpenTelemetry();
        await using var provider = services.BuildServiceProvider();
        var generator = provider.GetRequiredService<IImageGenerator>();
        Assert.NotNull(generator.GetService<OpenTelemetryImageGenerator>());
        Assert.Equal(Model, generator.GetService<ImageGeneratorMetadata>()!.DefaultModelId);
        var response = await generator.GenerateImagesAsync("a cat", new ImageGenerationOptions
        {
            ImageSize = new System.Drawing.Size(32, 32), AdditionalProperties = new() { ["steps"] = 1, ["seed"] = 0 },
        });
        var png = Image.Decode(((DataContent)response.Contents[0]).Data.ToArray());
        Assert.Equal((32, 32), (png.Width, png.Height));
    }
}
