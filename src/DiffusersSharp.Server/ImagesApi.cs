using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DiffusersSharp.Server;

/// <summary>
/// The OpenAI-compatible endpoints: <c>POST /v1/images/generations</c> (JSON), <c>POST /v1/images/edits</c> (multipart:
/// <c>image</c>, optional <c>mask</c> and <c>ip_adapter_image</c>), <c>GET /v1/models</c>; and the result files (<c>GET /v1/results/{file}</c>), the
/// history (<c>GET /v1/history</c>) and the scheduler names (<c>GET /v1/schedulers</c>) the page uses.
/// </summary>
internal static class ImagesApi
{
    public static void Map(WebApplication app, DiffusersServer server)
    {
        app.MapPost("/v1/images/generations", (RequestDelegate)(async ctx =>
        {
            var request = ApiRequest.FromJson(await ReadBody(ctx), server.Options);
            await Answer(ctx, server, request);
        }));
        app.MapPost("/v1/images/edits", (RequestDelegate)(async ctx =>
        {
            if (!ctx.Request.HasFormContentType)
                throw new ApiException(400, "an edit is a multipart/form-data request with an 'image' file", "image");
            IFormCollection form;
            try { form = await ctx.Request.ReadFormAsync(ctx.RequestAborted); }
            catch (Exception e) when (e is InvalidDataException or IOException && !ctx.RequestAborted.IsCancellationRequested)
            {
                // a malformed or cut-off multipart body: the client's error, never a bare 500
                throw new ApiException(400, $"the multipart body could not be read: {e.Message}", null, "invalid_multipart");
            }
            var fields = form.ToDictionary(f => f.Key, f => f.Value.ToString());
            var request = ApiRequest.FromForm(fields, await FileBytes(form, "image"), await FileBytes(form, "mask"), server.Options,
                await FileBytes(form, "ip_adapter_image"));
            await Answer(ctx, server, request);
        }));
        app.MapGet("/v1/models", (RequestDelegate)(ctx => DiffusersServer.WriteJson(ctx, 200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(server.Pool.Workers.Select(w => (JsonNode)Model(w)).ToArray()),
        })));
        // {**id}: a Hub id has a '/', sent as is or escaped (%2F, which the path keeps: OpenAI's client escapes the id)
        app.MapGet("/v1/models/{**id}", (RequestDelegate)(ctx =>
        {
            string id = Uri.UnescapeDataString((string)ctx.Request.RouteValues["id"]!);
            var w = server.Pool.Find(id) ?? throw new ApiException(404, $"model '{id}' is not served", "model", "model_not_found");
            return DiffusersServer.WriteJson(ctx, 200, Model(w));
        }));
        app.MapGet("/v1/results/{file}", (RequestDelegate)(async ctx =>
        {
            var path = server.Store.ImagePath((string)ctx.Request.RouteValues["file"]!)
                       ?? throw new ApiException(404, "no such result", "file");
            ctx.Response.ContentType = "image/png";
            ctx.Response.Headers.CacheControl = "public, max-age=31536000, immutable";
            await ctx.Response.SendFileAsync(path, ctx.RequestAborted);
        }));
        app.MapGet("/v1/history", (RequestDelegate)(ctx =>
        {
            int limit = int.TryParse(ctx.Request.Query["limit"], out var l) ? Math.Clamp(l, 1, 500) : 50;
            return DiffusersServer.WriteJson(ctx, 200, new JsonObject
            {
                ["object"] = "list",
                ["data"] = new JsonArray(server.Store.History(limit).Select(j => (JsonNode)j).ToArray()),
            });
        }));
        app.MapGet("/v1/schedulers", (RequestDelegate)(ctx => DiffusersServer.WriteJson(ctx, 200, new JsonObject
        {
            ["aliases"] = new JsonArray(Schedulers.SchedulerAliases.Aliases.Keys.Select(k => (JsonNode)JsonValue.Create(k)!).ToArray()),
            ["loras"] = new JsonArray(LoraNames(server.Options.LoraDir).Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
        })));
    }

    /// <summary>The LoRA names of <c>--lora-dir</c>: its <c>*.safetensors</c> files without the extension, sorted.</summary>
    private static IEnumerable<string> LoraNames(string? dir) =>
        dir is null || !Directory.Exists(dir)
            ? []
            : Directory.EnumerateFiles(dir, "*.safetensors").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal);

    private static JsonObject Model(ModelWorker w) => new()
    {
        ["id"] = w.Name,
        ["object"] = "model",
        ["created"] = 0,
        ["owned_by"] = "diffusers-sharp",
        ["loaded"] = w.Service is not null,
        ["queued"] = w.QueueLength,
    };

    /// <summary>Runs the request as a job and answers when it ends (a client that leaves cancels it).</summary>
    private static async Task Answer(HttpContext ctx, DiffusersServer server, ApiRequest request)
    {
        var job = server.Submit(request, previews: false);
        using (ctx.RequestAborted.Register(() => server.Cancel(job)))
            await job.Finished;
        ctx.RequestAborted.ThrowIfCancellationRequested();
        // a request the model cannot run is the client's error (400: OpenAI's client would retry a 500 three times, each
        // a whole generation that fails the same way); a fault of the server is 500; a cancelled job (DELETE, shutdown) 409
        if (job.Status != "done")
            throw new ApiException(job.Status != "failed" ? 409 : job.RequestError ? 400 : 500,
                $"generation {job.Status}: {job.Error ?? "cancelled"}", null, "generation_" + job.Status);
        // the images from the store: the job may already be compacted (its PNG bytes dropped) when this runs
        var data = new JsonArray();
        foreach (string file in job.Files)
            data.Add(request.ResponseFormat == "b64_json"
                ? new JsonObject { ["b64_json"] = Convert.ToBase64String(await File.ReadAllBytesAsync(Path.Combine(server.Store.ResultsDir, file), ctx.RequestAborted)) }
                : new JsonObject { ["url"] = $"{ctx.Request.Scheme}://{ctx.Request.Host}/v1/results/{file}" });
        await DiffusersServer.WriteJson(ctx, 200, new JsonObject
        {
            ["created"] = job.Created.ToUnixTimeSeconds(),
            ["data"] = data,
            ["seed"] = job.Seed,
        });
    }

    /// <summary>The request body as text (a 10 MB prompt is read, then refused by its length with a clear message).</summary>
    internal static async Task<string> ReadBody(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        return await reader.ReadToEndAsync(ctx.RequestAborted);
    }

    private static async Task<byte[]?> FileBytes(IFormCollection form, string name)
    {
        var file = form.Files.GetFile(name) ?? form.Files.GetFile(name + "[]");
        if (file is null) return null;
        using var ms = new MemoryStream();
        await file.CopyToAsync(ms);
        return ms.ToArray();
    }
}
