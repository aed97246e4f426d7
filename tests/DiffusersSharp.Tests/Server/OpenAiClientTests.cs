using System.ClientModel;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using OpenAI;
using OpenAI.Images;
using OpenAI.Models;

#pragma warning disable OPENAI001 // some image options are marked experimental

namespace DiffusersSharp.Tests.Server;

/// <summary>The official OpenAI .NET client pointed at our server: generations, edits, models.</summary>
[Collection("server")]
public class OpenAiClientTests(ServerFixture fixture)
{
    private OpenAIClientOptions Options => new() { Endpoint = new Uri(fixture.Server.Address, "/v1") };

    [Fact]
    public async Task TheClientGeneratesBytesAndUrls()
    {
        var client = new ImageClient("tiny-sd", new ApiKeyCredential("not-needed"), Options);
        GeneratedImage bytes = await client.GenerateImageAsync("a cat",
            new ImageGenerationOptions { Size = new GeneratedImageSize(64, 48), ResponseFormat = GeneratedImageFormat.Bytes });
        var image = Image.Decode(bytes.ImageBytes.ToArray());
        Assert.Equal((64, 48), (image.Width, image.Height));

        GeneratedImage url = await client.GenerateImageAsync("a dog",
            new ImageGenerationOptions { Size = new GeneratedImageSize(32, 32), ResponseFormat = GeneratedImageFormat.Uri });
        Assert.StartsWith(fixture.Server.Address + "v1/results/", url.ImageUri.ToString());
        var png = await fixture.Http.GetByteArrayAsync(url.ImageUri);
        Assert.Equal((32, 32), (Image.Decode(png).Width, Image.Decode(png).Height));
    }

    [Fact]
    public async Task TheClientEditsWithAMask()
    {
        var client = new ImageClient("tiny-sd", new ApiKeyCredential("not-needed"), Options);
        using var init = File.OpenRead(Golden.Path("img2img-init.png"));
        using var mask = File.OpenRead(Golden.Path("inpaint-mask.png"));
        GeneratedImage edited = await client.GenerateImageEditAsync(init, "init.png", "a cat", mask, "mask.png",
            new ImageEditOptions { ResponseFormat = GeneratedImageFormat.Bytes });
        var image = Image.Decode(edited.ImageBytes.ToArray());
        var original = Image.Load(Golden.Path("img2img-init.png"));
        Assert.Equal((original.Width, original.Height), (image.Width, image.Height));
    }

    [Fact]
    public async Task TheClientListsTheModels()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("not-needed"), Options);
        var list = await models.GetModelsAsync();
        Assert.Equal(["tiny-sd"], list.Value.Select(m => m.Id));
    }

    [Fact]
    public async Task AnUnknownModelIsAClientError()
    {
        var client = new ImageClient("dall-e-3", new ApiKeyCredential("not-needed"), Options);
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.GenerateImageAsync("a cat"));
        Assert.Equal(400, e.Status);
        Assert.Contains("model: unknown model 'dall-e-3'; served models: tiny-sd", e.Message);
    }
}
