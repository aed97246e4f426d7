using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;
using OpenAI;
using OpenAI.Images;
using OpenAI.Models;
using SkiaSharp;

namespace DiffusersSharp.Tests.Server;

/// <summary>
/// What real clients meet: a request the model cannot run is a 400 the OpenAI client does not retry, malformed input is a
/// 400 (never a bare 500), an edit without a mask takes its image's transparency, uploads are turned upright by their EXIF
/// orientation, a synchronous request decodes no
/// previews, a queue of 0 still runs a job, cross-site browser requests are refused, Ctrl+C cancels the runs in progress.
/// </summary>
[Collection("server")]
public class ServerRequestTests(ServerFixture fixture)
{
    private HttpClient Http => fixture.Http;

    [Fact]
    public async Task ARequestTheModelCannotRunIsA400ThatTheOpenAiClientDoesNotRetry()
    {
        using var data = new TempDir();
        using var inpaint = Pipelines.StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with { Models = [inpaint.Path] });
        await server.StartAsync();
        var client = new ImageClient(ModelPool.NameOf(inpaint.Path), new ApiKeyCredential("not-needed"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "/v1") });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.GenerateImageAsync("a cat",
            new ImageGenerationOptions { Size = new GeneratedImageSize(32, 32), ResponseFormat = GeneratedImageFormat.Bytes }));
        Assert.True(e.Status == 400, e.Message);
        Assert.Contains("is an inpainting model: give an image and a mask (/v1/images/edits)", e.Message);
        using var http = new HttpClient { BaseAddress = server.Address };
        var history = JsonNode.Parse(await http.GetStringAsync("/v1/history"))!["data"]!.AsArray();
        Assert.Equal("failed", (string?)Assert.Single(history)!["status"]);   // one run: a 500 made the client send it 4 times
    }

    [Theory]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": [1]}", "loras: must be a list of names or {\"name\": NAME, \"weight\": NUMBER} objects")]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": [{\"name\": 2}]}", "loras: must be a list of names or {\"name\": NAME, \"weight\": NUMBER} objects")]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": [{\"name\": \"kohya\", \"weight\": \"high\"}]}", "loras: must be objects whose 'weight' is a number")]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": [\"kohya\", {\"name\": \"kohya\"}]}", "loras: 'kohya' is given twice")]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": {\"kohya\": \"0.5\"}}", "loras: must be a JSON object of name → weight (a number)")]
    public async Task MalformedLorasAreA400NamingTheField(string body, string message)
    {
        var (status, json, _) = await ServerFixture.PostJson(Http, "/v1/images/generations", body);
        Assert.Equal(400, status);
        Assert.Equal(message, (string?)json!["error"]!["message"]);
        Assert.Equal("loras", (string?)json["error"]!["param"]);
    }

    [Fact]
    public async Task AMalformedMultipartEditIsA400()
    {
        using var content = new StringContent("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n\r\nunterminated");
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b");
        var response = await Http.PostAsync("/v1/images/edits", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.StartsWith("the multipart body could not be read: ", (string?)error["message"]);
    }

    [Fact]
    public async Task AnEditWithoutAMaskRepaintsTheImagesTransparentArea()
    {
        // the init image, transparent where the golden mask is white; the same area as an explicit black/white mask
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var area = Image.Load(Golden.Path("inpaint-mask.png"), grayscale: true);
        area = area.Width == init.Width && area.Height == init.Height ? area : ImageResize.Resize(area, init.Width, init.Height);
        byte[] transparent = Png(init.Width, init.Height, (x, y) =>
        {
            int i = (y * init.Width + x) * 3;
            return (init.Pixels[i], init.Pixels[i + 1], init.Pixels[i + 2], area.Pixels[y * init.Width + x] >= 128 ? (byte)0 : (byte)255);
        });
        byte[] mask = Png(init.Width, init.Height, (x, y) =>
        {
            byte v = area.Pixels[y * init.Width + x] >= 128 ? (byte)255 : (byte)0;
            return (v, v, v, 255);
        });
        Assert.Contains(area.Pixels, p => p >= 128);
        Assert.Contains(area.Pixels, p => p < 128);
        byte[] withoutMask = await Edit(transparent, null), withMask = await Edit(transparent, mask), opaque = await Edit(Png(init.Width, init.Height, (x, y) =>
        {
            int i = (y * init.Width + x) * 3;
            return (init.Pixels[i], init.Pixels[i + 1], init.Pixels[i + 2], 255);
        }), null);
        Assert.Equal(withMask, withoutMask);
        Assert.NotEqual(opaque, withoutMask);   // an opaque image without a mask is image to image
    }

    [Fact]
    public async Task AnEditsImageAndMaskAreTurnedUprightByTheirExifOrientation()
    {
        // a phone photo (stored 32x16, EXIF orientation 6) and a mask stored turned with orientation 8, against PIL's
        // exif_transpose of each (16x32): the server reads uploads as diffusers' load_image does, upright
        string E(string file) => Golden.Path("exif-orientation", file);
        byte[] oriented = await Edit(File.ReadAllBytes(E("photo-6.jpg")), File.ReadAllBytes(E("photo-mask-8.png")));
        byte[] upright = await Edit(File.ReadAllBytes(E("photo-6-upright.png")), File.ReadAllBytes(E("photo-mask-8-upright.png")));
        var result = Image.Decode(upright);
        Assert.Equal((16, 32), (result.Width, result.Height));
        Assert.Equal(upright, oriented);
    }

    private async Task<byte[]> Edit(byte[] image, byte[]? mask)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a cat"), "prompt" }, { new StringContent("b64_json"), "response_format" },
            { new StringContent("2"), "steps" }, { new StringContent("3"), "seed" },
            { new ByteArrayContent(image), "image", "image.png" },
        };
        if (mask is not null) form.Add(new ByteArrayContent(mask), "mask", "mask.png");
        var response = await Http.PostAsync("/v1/images/edits", form);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return Convert.FromBase64String((string)JsonNode.Parse(text)!["data"]![0]!["b64_json"]!);
    }

    /// <summary>An RGBA PNG (unpremultiplied) of <paramref name="pixel"/>.</summary>
    internal static byte[] Png(int width, int height, Func<int, int, (byte R, byte G, byte B, byte A)> pixel)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b, a) = pixel(x, y);
                bitmap.SetPixel(x, y, new SKColor(r, g, b, a));
            }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    [Fact]
    public async Task ASynchronousRequestDecodesNoPreviews()
    {
        var (status, body, _) = await ServerFixture.PostJson(Http, "/v1/images/generations",
            "{\"prompt\": \"no previews\", \"size\": \"32x32\", \"steps\": 3, \"seed\": 1, \"scheduler\": \"ddim\", \"response_format\": \"b64_json\"}");
        Assert.Equal(200, status);
        Assert.NotNull(body);
        var history = JsonNode.Parse(await Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!;
        Assert.Equal("no previews", (string?)history["parameters"]!["prompt"]);
        var events = fixture.Server.FindJob((string)history["id"]!)!.Read(0).Events;
        Assert.Equal([1, 2, 3], events.Where(e => e.Type == "step").Select(e => (int)e.Data["step"]!));
        Assert.DoesNotContain(events, e => e.Type == "preview");   // the fixture's jobs preview every step
    }

    [Fact]
    public async Task AQueueOfZeroStillRunsAJob()
    {
        using var data = new TempDir();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with { MaxQueue = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        var (status, body, _) = await ServerFixture.PostJson(http, "/v1/images/generations", "{\"prompt\": \"a cat\", \"size\": \"32x32\", \"steps\": 1}");
        Assert.True(status == 200, body?.ToJsonString());
    }

    [Fact]
    public async Task CrossSiteBrowserRequestsAreRefused()
    {
        using var evil = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = new StringContent("{\"prompt\": \"a cat\"}", Encoding.UTF8, "text/plain") };
        evil.Headers.Add("Origin", "http://evil.example");
        var response = await Http.SendAsync(evil);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("a request from the web page of http://evil.example is refused: this server answers its own page and non-browser clients",
            (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["message"]);

        // the server's own page passes (then its body is refused: the origin check came first)
        using var own = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = new StringContent("[1]", Encoding.UTF8, "application/json") };
        own.Headers.Add("Origin", fixture.Server.Address.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.BadRequest, (await Http.SendAsync(own)).StatusCode);

        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        rebound.Headers.Host = "rebound.example:" + fixture.Server.Address.Port;
        response = await Http.SendAsync(rebound);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.StartsWith("Host 'rebound.example:", (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["message"]);
        using var localhost = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        localhost.Headers.Host = "localhost:" + fixture.Server.Address.Port;
        Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(localhost)).StatusCode);
    }

    [Fact]
    public async Task TheOpenAiClientFindsAModelByItsEscapedPath()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("not-needed"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });
        OpenAIModel model = await models.GetModelAsync(Golden.Path("tiny-sd"));   // the client sends its '/'s as %2F
        Assert.Equal("tiny-sd", model.Id);
    }

    [Fact]
    public async Task StoppingTheServerCancelsTheRunInProgress()
    {
        using var data = new TempDir();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path));
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(5) };
        var request = ServerFixture.PostJson(http, "/v1/images/generations", "{\"prompt\": \"a long one\", \"size\": \"64x64\", \"steps\": 900}");
        var worker = server.Pool.Workers[0];
        for (int i = 0; i < 600 && !worker.Running; i++) await Task.Delay(50);
        Assert.True(worker.Running, "the job did not start");
        await server.App.StopAsync();
        var (status, body, _) = await request;
        Assert.Equal(409, status);   // before: the stop waited for all 900 steps and the client got its image
        Assert.Equal("generation_cancelled", (string?)body!["error"]!["code"]);
    }
}
