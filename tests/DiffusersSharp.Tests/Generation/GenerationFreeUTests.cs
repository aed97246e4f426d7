using DiffusersSharp.Extensions.AI;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using Microsoft.Extensions.AI;

#pragma warning disable MEAI001 // the image API of Microsoft.Extensions.AI is experimental

namespace DiffusersSharp.Tests.Generation;

/// <summary>
/// <see cref="GenerationRequest.FreeU"/> on tests/golden/tiny-sd: the pipeline's <c>EnableFreeU</c> bytes for that request
/// only; the UNet's FreeU state comes back after the run, also when it fails or is cancelled; the IImageGenerator's
/// <c>freeu</c> property.
/// </summary>
public class GenerationFreeUTests
{
    private static string Model => GenerationServiceTests.Model;

    /// <summary>diffusers' documented SD 1.5 values.</summary>
    internal static readonly FreeUFactors Sd15 = new(0.9, 0.2, 1.2, 1.4);

    internal static GenerationRequest Plain => new() { Prompt = "a red house", Steps = 3, Width = 64, Height = 64, Seed = 5 };

    /// <summary>The pipeline's image of <see cref="Plain"/>, with <c>EnableFreeU</c> when <paramref name="freeU"/> is given.</summary>
    internal static byte[] PipelineBytes(FreeUFactors? freeU)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        if (freeU is { } f) pipe.EnableFreeU(f.S1, f.S2, f.B1, f.B2);
        using var r = pipe.Generate("a red house", height: 64, width: 64, numInferenceSteps: 3, seed: 5);
        return r.Images[0].ToPng();
    }

    [Fact]
    public void AFreeURequestGivesThePipelinesFreeUBytesAndTheNextPlainRequestAFreshServicesBytes()
    {
        byte[] freeU = PipelineBytes(Sd15);
        using var service = GenerationService.Load(Model);
        byte[] plain = service.Generate(Plain).Images[0];   // a fresh service's
        Assert.Equal(PipelineBytes(null), plain);
        Assert.NotEqual(plain, freeU);

        var result = service.Generate(Plain with { FreeU = Sd15 });
        Assert.Equal(freeU, result.Images[0]);
        Assert.Equal(Sd15, result.Request.FreeU);   // echoed
        Assert.Equal(plain, service.Generate(Plain).Images[0]);
        // a zero factor leaves FreeU off, as diffusers' "s1 and s2 and b1 and b2"
        Assert.Equal(plain, service.Generate(Plain with { FreeU = new FreeUFactors(0.9, 0.2, 0, 1.4) }).Images[0]);
    }

    [Fact]
    public void AFreeURequestThatFailsOrIsCancelledLeavesFreeUOffForTheNextRequest()
    {
        using var service = GenerationService.Load(Model);
        byte[] plain = service.Generate(Plain).Images[0];

        // fails in the run, after FreeU was set: the caller's progress throws at the first step
        var e = Assert.Throws<InvalidOperationException>(() => service.Generate(Plain with { FreeU = Sd15 },
            new GenerationServiceTests.SyncProgress(_ => throw new InvalidOperationException("the caller's progress failed"))));
        Assert.Equal("the caller's progress failed", e.Message);
        Assert.Equal(plain, service.Generate(Plain).Images[0]);

        // cancelled at its second step
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => service.Generate(Plain with { FreeU = Sd15 },
            new GenerationServiceTests.SyncProgress(p => { if (p.Step == 2) cts.Cancel(); }), cts.Token));
        Assert.Equal(plain, service.Generate(Plain).Images[0]);
    }

    [Fact]
    public void FreeUEnabledOnThePipelineComesBackAfterARequestWithOtherFactors()
    {
        byte[] sd15 = PipelineBytes(Sd15);
        using var service = GenerationService.Load(Model);
        ((StableDiffusionPipeline)service.Pipeline).EnableFreeU(Sd15.S1, Sd15.S2, Sd15.B1, Sd15.B2);
        var other = service.Generate(Plain with { FreeU = new FreeUFactors(0.6, 0.4, 1.1, 1.2) }).Images[0];
        Assert.NotEqual(sd15, other);
        Assert.Equal(sd15, service.Generate(Plain).Images[0]);
    }

    [Theory]
    [InlineData(double.NaN, 0.2, 1.2, 1.4, "freeu: s1 must be a finite number, got NaN")]
    [InlineData(0.9, double.PositiveInfinity, 1.2, 1.4, "freeu: s2 must be a finite number, got Infinity")]
    [InlineData(0.9, 0.2, double.NegativeInfinity, 1.4, "freeu: b1 must be a finite number, got -Infinity")]
    [InlineData(0.9, 0.2, 1.2, double.NaN, "freeu: b2 must be a finite number, got NaN")]
    public void ANonFiniteFactorIsRefusedNamingIt(double s1, double s2, double b1, double b2, string message)
    {
        var e = Assert.Throws<DiffusersException>(() => GenerationService.Validate(Plain with { FreeU = new FreeUFactors(s1, s2, b1, b2) }));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public async Task TheImageGeneratorsFreeUPropertyGivesTheServicesFreeUBytes()
    {
        byte[] freeU = PipelineBytes(Sd15), plain = PipelineBytes(null);
        using var generator = new DiffusersImageGenerator(new DiffusersImageGeneratorOptions { Model = Model });
        foreach (object value in new object[]
                 {
                     Sd15, new[] { 0.9, 0.2, 1.2, 1.4 }, new List<float> { 0.9f, 0.2f, 1.2f, 1.4f }, "0.9,0.2,1.2,1.4",
                     System.Text.Json.JsonDocument.Parse("[0.9, 0.2, 1.2, 1.4]").RootElement,
                 })
        {
            var response = await generator.GenerateAsync(new ImageGenerationRequest("a red house"), Options(value));
            byte[] bytes = Assert.IsType<DataContent>(Assert.Single(response.Contents)).Data.ToArray();
            // a float list's factors are the floats' values (0.2f is not 0.2): only the double forms give the pipeline's bytes
            if (value is List<float>) Assert.NotEqual(plain, bytes);
            else Assert.Equal(freeU, bytes);
        }
        var after = await generator.GenerateAsync(new ImageGenerationRequest("a red house"), Options(null));
        Assert.Equal(plain, Assert.IsType<DataContent>(Assert.Single(after.Contents)).Data.ToArray());
    }

    [Fact]
    public async Task AMalformedFreeUPropertyIsRefusedNamingIt()
    {
        using var generator = new DiffusersImageGenerator(new DiffusersImageGeneratorOptions { Model = Model });
        var e = await Assert.ThrowsAsync<ArgumentException>(() =>
            generator.GenerateAsync(new ImageGenerationRequest("a red house"), Options(new[] { 0.9, 0.2, 1.2 })));
        Assert.Equal("AdditionalProperties 'freeu': expected four numbers [s1, s2, b1, b2] (a list, a JSON array or \"s1,s2,b1,b2\"), got [0.9, 0.2, 1.2] (Parameter 'freeu')", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() =>
            generator.GenerateAsync(new ImageGenerationRequest("a red house"), Options("0.9,0.2,abc,1.4")));
        Assert.Equal("AdditionalProperties 'freeu': expected four numbers [s1, s2, b1, b2] (a list, a JSON array or \"s1,s2,b1,b2\"), got '0.9,0.2,abc,1.4' (Parameter 'freeu')", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() =>
            generator.GenerateAsync(new ImageGenerationRequest("a red house"), Options(new[] { 0.9, double.NaN, 1.2, 1.4 })));
        Assert.Equal("freeu: s2 must be a finite number, got NaN (Parameter 'options')", e.Message);
    }

    private static ImageGenerationOptions Options(object? freeU)
    {
        var props = new AdditionalPropertiesDictionary { ["seed"] = 5, ["steps"] = 3 };
        if (freeU is not null) props["freeu"] = freeU;
        return new ImageGenerationOptions { ImageSize = new System.Drawing.Size(64, 64), AdditionalProperties = props };
    }
}
