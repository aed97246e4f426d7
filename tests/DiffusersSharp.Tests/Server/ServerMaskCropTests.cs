using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>
/// <c>padding_mask_crop</c> (diffusers' inpainting of the area around the mask) as an extra field of a real
/// <c>/v1/images/edits</c> multipart form on 127.0.0.1: the library pipeline's bytes, 400s naming the field for what is not a
/// margin or not an edit with a mask, and the library's own refusal of a 9-channel UNet.
/// </summary>
[Collection("server")]
public class ServerMaskCropTests(ServerFixture fixture)
{
    private static readonly byte[] InitPng = File.ReadAllBytes(Golden.Path("img2img-init.png"));
    private static readonly byte[] MaskPng = File.ReadAllBytes(Golden.Path("inpaint-mask.png"));

    [Fact]
    public async Task AnEditWithPaddingMaskCropGivesThePipelinesBytes()
    {
        byte[] expected;
        using (var pipe = StableDiffusionInpaintPipeline.FromPretrained(Golden.Path("tiny-sd")))
        using (var r = pipe.Generate("a cat", Image.LoadImage(InitPng), MaskImage.Decode(MaskPng), numInferenceSteps: 2, seed: 3, paddingMaskCrop: 4))
            expected = r.Images[0].ToPng();
        var (status, body) = await Edit(fixture.Http, MaskPng, ("padding_mask_crop", "4"));
        Assert.True(status == 200, body?.ToJsonString());
        byte[] cropped = Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!);
        Assert.Equal(expected, cropped);
        var parameters = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Equal(4, (int?)parameters["padding_mask_crop"]);
        // the size the crop ran at, the model's default (not the output's, the image put back together; was null, which
        // the page's history showed as "nullxnull")
        Assert.Equal((64, 64), ((int?)parameters["width"], (int?)parameters["height"]));

        var (_, whole) = await Edit(fixture.Http, MaskPng);
        Assert.NotEqual(cropped, Convert.FromBase64String((string)whole!["data"]![0]!["b64_json"]!));
    }

    [Theory]
    [InlineData("abc", true, "padding_mask_crop: must be an integer")]
    [InlineData("4.5", true, "padding_mask_crop: must be an integer")]
    [InlineData("-1", true, "padding_mask_crop: must be 0 or more (a margin in pixels), got -1")]
    [InlineData("99999999999", true, "padding_mask_crop: must be 0 or more (a margin in pixels) and at most 2147483647, got 99999999999")]
    [InlineData("4", false, "padding_mask_crop: inpaints the area around the mask; give an image and a mask (an edit)")]
    public async Task ABadPaddingMaskCropIsA400NamingTheField(string value, bool withMask, string message)
    {
        var (status, body) = await Edit(fixture.Http, withMask ? MaskPng : null, ("padding_mask_crop", value));
        Assert.Equal(400, status);
        Assert.Equal(message, (string?)body!["error"]!["message"]);
        Assert.Equal("padding_mask_crop", (string?)body["error"]!["param"]);
    }

    [Fact]
    public async Task PaddingMaskCropWithoutAnImageIsA400NamingTheField()
    {
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{\"prompt\": \"a cat\", \"padding_mask_crop\": 4}");
        Assert.Equal(400, status);
        Assert.Equal("padding_mask_crop: inpaints the area around the mask; give an image and a mask (an edit)", (string?)body!["error"]!["message"]);
    }

    [Fact]
    public async Task ANineChannelInpaintingModelRefusesPaddingMaskCropWithTheLibrarysMessageAsA400()
    {
        using var data = new TempDir();
        using var inpaint = Pipelines.StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with { Models = [inpaint.Path] });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(120) };
        var (status, body) = await Edit(http, MaskPng, ("padding_mask_crop", "4"));
        Assert.Equal(400, status);
        Assert.Equal("generation failed: StableDiffusionInpaintPipeline: The UNet should have 4 input channels for inpainting mask crop, but has 9 input channels.",
            (string?)body!["error"]!["message"]);
    }

    /// <summary>An edit of img2img-init.png ("a cat", 2 steps, seed 3, b64_json) with the extra form fields.</summary>
    private static async Task<(int Status, JsonNode? Body)> Edit(HttpClient http, byte[]? mask, params (string Name, string Value)[] fields)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a cat"), "prompt" }, { new StringContent("b64_json"), "response_format" },
            { new StringContent("2"), "steps" }, { new StringContent("3"), "seed" },
        };
        var image = new ByteArrayContent(InitPng);
        image.Headers.ContentType = MediaTypeHeaderValue.Parse("image/png");
        form.Add(image, "image", "image.png");
        if (mask is not null) form.Add(new ByteArrayContent(mask), "mask", "mask.png");
        foreach (var (name, value) in fields) form.Add(new StringContent(value), name);
        var response = await http.PostAsync("/v1/images/edits", form);
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }
}
