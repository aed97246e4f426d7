using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace DiffusersSharp.Server;

/// <summary>
/// The job endpoints: <c>POST /v1/jobs</c> (the generation fields as JSON) → <c>{id}</c>; <c>GET /v1/jobs/{id}</c> (state,
/// last progress, result); <c>GET /v1/jobs/{id}/events</c> (server-sent events: <c>queued</c> with the position,
/// <c>started</c>, <c>step</c> with s/step and ETA, <c>preview</c>, then <c>done</c> with the image URLs, <c>failed</c> with
/// the message, or <c>cancelled</c>); <c>DELETE /v1/jobs/{id}</c> cancels (a waiting job leaves the queue at once, a running one stops within one step).
/// </summary>
internal static class JobsApi
{
    public static void Map(WebApplication app, DiffusersServer server)
    {
        app.MapPost("/v1/jobs", (RequestDelegate)(async ctx =>
        {
            var job = server.Submit(ApiRequest.FromJson(await ImagesApi.ReadBody(ctx), server.Options));
            await DiffusersServer.WriteJson(ctx, 202, new JsonObject
            {
                ["id"] = job.Id,
                ["status"] = job.Status,
                ["model"] = job.Model,
                ["events"] = $"/v1/jobs/{job.Id}/events",
            });
        }));
        app.MapGet("/v1/jobs/{id}", (RequestDelegate)(ctx =>
        {
            string id = (string)ctx.Request.RouteValues["id"]!;
            if (server.FindJob(id) is { } job && !(job.Finished.IsCompleted && server.Store.Get(id) is not null))
                return DiffusersServer.WriteJson(ctx, 200, new JsonObject
                {
                    ["id"] = job.Id,
                    ["status"] = job.Status,
                    ["model"] = job.Model,
                    ["created"] = job.Created.ToString("O"),
                    ["progress"] = job.LastProgress?.DeepClone(),
                });
            var stored = server.Store.Get(id) ?? throw new ApiException(404, $"no job '{id}'", "id", "job_not_found");
            stored["images"] = new JsonArray(stored["images"]!.AsArray().Select(f => (JsonNode)JsonValue.Create("/v1/results/" + f)!).ToArray());
            return DiffusersServer.WriteJson(ctx, 200, stored);
        }));
        app.MapDelete("/v1/jobs/{id}", (RequestDelegate)(ctx =>
        {
            string id = (string)ctx.Request.RouteValues["id"]!;
            var job = server.FindJob(id) ?? throw new ApiException(404, $"no job '{id}' is queued or running", "id", "job_not_found");
            server.Cancel(job);
            // read after the cancel: a running job publishes at most one more step event (DenoisingLoop, GenerationService)
            return DiffusersServer.WriteJson(ctx, 200, new JsonObject
            {
                ["id"] = id,
                ["status"] = job.Finished.IsCompleted ? job.Status : "cancelling",
                ["progress"] = job.LastProgress?.DeepClone(),
            });
        }));
        app.MapGet("/v1/jobs/{id}/events", (RequestDelegate)(ctx => Stream(ctx, server)));
    }

    /// <summary>Replays the job's events, then follows it until its final event or the client leaves.</summary>
    private static async Task Stream(HttpContext ctx, DiffusersServer server)
    {
        string id = (string)ctx.Request.RouteValues["id"]!;
        var job = server.FindJob(id);
        JsonObject? stored = job is null ? server.Store.Get(id) : null;
        if (job is null && stored is null) throw new ApiException(404, $"no job '{id}'", "id", "job_not_found");
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var ct = ctx.RequestAborted;
        await ctx.Response.WriteAsync(": connected\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
        if (job is null)
        {
            string status = stored!["status"]!.GetValue<string>();
            var data = new JsonObject { ["id"] = id };
            if (status == "done")
            {
                data["images"] = new JsonArray(stored["images"]!.AsArray().Select(f => (JsonNode)JsonValue.Create("/v1/results/" + f)!).ToArray());
                data["seed"] = stored["parameters"]?["seed"]?.DeepClone();
                data["parameters"] = stored["parameters"]!.DeepClone();
            }
            else data["message"] = stored["error"]?.DeepClone() ?? status;
            await ctx.Response.WriteAsync(new JobEvent(status, data).ToSse(), ct);
            return;
        }
        int next = 0;
        while (!ct.IsCancellationRequested)
        {
            var (events, more) = job.Read(next);
            next += events.Count;
            foreach (var e in events)
                await ctx.Response.WriteAsync(e.ToSse(), ct);
            if (events.Count > 0) await ctx.Response.Body.FlushAsync(ct);
            if (events.Any(e => e.IsFinal)) return;
            await more.WaitAsync(TimeSpan.FromSeconds(15), ct).ContinueWith(_ => { }, TaskScheduler.Default);
            if (!more.IsCompleted)
            {
                await ctx.Response.WriteAsync(": keep-alive\n\n", ct);
                await ctx.Response.Body.FlushAsync(ct);
            }
        }
    }
}
