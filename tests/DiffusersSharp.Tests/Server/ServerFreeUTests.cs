using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Generation;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>
/// <c>freeu</c> (<c>[s1, s2, b1, b2]</c>, FreeU for that request) on a real server on 127.0.0.1: the generation service's
/// FreeU bytes for generations, jobs and edits, echoed in the parameters; malformed values are 400s naming the field.
/// </summary>
[Collection("server")]
public class ServerFreeUTests(ServerFixture fixture)
{
    private static readonly byte[] InitPng = File.ReadAllBytes(Golden.Path("img2img-init.png"));
    private static readonly byte[] MaskPng = File.ReadAllBytes(Golden.Path("inpaint-mask.png"));
    private const string Body = "\"prompt\": \"a red house\", \"size\": \"64x64\", \"steps\": 3, \"seed\": 5, \"response_format\": \"b64_json\"";

    [Fact]
    public async Task AGenerationWithFreeUGivesTheServicesFreeUBytesAndEchoesThem()
    {
        byte[] freeU, plain;
        using (var service = GenerationService.Load(GenerationServiceTests.Model))
        {
            freeU = service.Generate(GenerationFreeUTests.Plain with { FreeU = GenerationFreeUTests.Sd15 }).Images[0];
            plain = service.Generate(GenerationFreeUTests.Plain).Images[0];
        }
        Assert.NotEqual(plain, freeU);
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + ", \"freeu\": [0.9, 0.2, 1.2, 1.4]}");
        Assert.True(status == 200, body?.ToJsonString());
        Assert.Equal(freeU, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
        var parameters = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Equal([0.9, 0.2, 1.2, 1.4], parameters["freeu"]!.AsArray().Select(n => (double)n!));

        // the next request without it is the plain image, and its parameters have no freeu
        (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + "}");
        Assert.Equal(200, status);
        Assert.Equal(plain, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
        parameters = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Null(parameters["freeu"]);
    }

    [Fact]
    public async Task AJobWithFreeUEchoesItInItsDoneEvent()
    {
        var (status, job, _) = await ServerFixture.PostJson(fixture.Http, "/v1/jobs", "{" + Body + ", \"freeu\": [0.6, 0.4, 1.1, 1.2]}");
        Assert.Equal(202, status);
        var events = await ServerFixture.ReadEvents(fixture.Http, (string)job!["id"]!);
        var done = events[^1];
        Assert.Equal("done", done.Type);
        Assert.Equal([0.6, 0.4, 1.1, 1.2], done.Data["parameters"]!["freeu"]!.AsArray().Select(n => (double)n!));
    }

    [Fact]
    public async Task AnEditWithFreeUGivesTheServicesFreeUInpaintingBytes()
    {
        var inpaint = new GenerationRequest
        {
            Prompt = "a cat", Steps = 2, Seed = 3, InitImage = Image.LoadImage(InitPng), Mask = MaskImage.Decode(MaskPng),
            FreeU = GenerationFreeUTests.Sd15,
        };
        byte[] freeU, plain;
        using (var service = GenerationService.Load(GenerationServiceTests.Model))
        {
            freeU = service.Generate(inpaint).Images[0];
            plain = service.Generate(inpaint with { FreeU = null }).Images[0];
        }
        Assert.NotEqual(plain, freeU);
        foreach (string value in new[] { "0.9,0.2,1.2,1.4", "[0.9, 0.2, 1.2, 1.4]" })
        {
            var (status, body) = await Edit(("freeu", value));
            Assert.True(status == 200, body?.ToJsonString());
            Assert.Equal(freeU, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
        }
        var (_, without) = await Edit();
        Assert.Equal(plain, Convert.FromBase64String((string)without!["data"]![0]!["b64_json"]!));
    }

    [Theory]
    [InlineData("[0.9, 0.2, 1.2]", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("[0.9, 0.2, 1.2, 1.4, 1]", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("[0.9, 0.2, \"1.2\", 1.4]", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("[0.9, 0.2, null, 1.4]", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("\"0.9,0.2,1.2,1.4\"", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("{\"s1\": 0.9}", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("[1e999, 0.2, 1.2, 1.4]", "freeu: s1 must be a finite number, got Infinity")]
    [InlineData("[0.9, 0.2, 1.2, -1e400]", "freeu: b2 must be a finite number, got -Infinity")]
    public async Task AMalformedFreeUIsA400NamingTheField(string value, string message)
    {
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + ", \"freeu\": " + value + "}");
        Assert.Equal(400, status);
        Assert.Equal(message, (string?)body!["error"]!["message"]);
        Assert.Equal("freeu", (string?)body["error"]!["param"]);
        (status, _, _) = await ServerFixture.PostJson(fixture.Http, "/v1/jobs", "{" + Body + ", \"freeu\": " + value + "}");
        Assert.Equal(400, status);
    }

    [Theory]
    [InlineData("0.9,0.2,1.2", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("0.9,0.2,high,1.4", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("[0.9, 0.2", "freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])")]
    [InlineData("0.9,NaN,1.2,1.4", "freeu: s2 must be a finite number, got NaN")]
    public async Task AMalformedFreeUFormFieldIsA400NamingTheField(string value, string message)
    {
        var (status, body) = await Edit(("freeu", value));
        Assert.Equal(400, status);
        Assert.Equal(message, (string?)body!["error"]!["message"]);
        Assert.Equal("freeu", (string?)body["error"]!["param"]);
    }

    /// <summary>An edit of img2img-init.png with inpaint-mask.png ("a cat", 2 steps, seed 3, b64_json) and the extra form fields.</summary>
    private async Task<(int Status, JsonNode? Body)> Edit(params (string Name, string Value)[] fields)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a cat"), "prompt" }, { new StringContent("b64_json"), "response_format" },
            { new StringContent("2"), "steps" }, { new StringContent("3"), "seed" },
        };
        var image = new ByteArrayContent(InitPng);
        image.Headers.ContentType = MediaTypeHeaderValue.Parse("image/png");
        form.Add(image, "image", "image.png");
        form.Add(new ByteArrayContent(MaskPng), "mask", "mask.png");
        foreach (var (name, value) in fields) form.Add(new StringContent(value), name);
        var response = await fixture.Http.PostAsync("/v1/images/edits", form);
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }
}
