using System.Buffers.Binary;
using System.Text.Json.Nodes;
using DiffusersSharp.Generation;

namespace DiffusersSharp.Server;

/// <summary>Runs one job on its worker's thread: load, generate with progress events, store, final event.</summary>
internal static class JobRunner
{
    public static void Run(Job job, ModelWorker worker, ModelPool pool, ResultStore store, ServerOptions options)
    {
        var ct = job.Cancellation.Token;
        if (ct.IsCancellationRequested)
        {
            End(job, store, "cancelled", null, null);
            return;
        }
        job.Publish(new JobEvent("started", new JsonObject { ["id"] = job.Id, ["model"] = worker.Name }));
        bool generating = false;   // past loading: a library refusal from here on is about the request, not the server
        try
        {
            var service = pool.Acquire(worker);
            GenerationResult result;
            try
            {
                service.PreviewEvery = job.Previews ? options.PreviewEvery : 0;
                generating = true;
                result = service.Generate(job.Request, new Reporter(job), ct);
            }
            finally
            {
                pool.Release(worker);
                worker.CountLiveTensors();
            }
            End(job, store, "done", result, null);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            End(job, store, "cancelled", null, null);
        }
        catch (Exception e) when (e is DiffusersException or ArgumentException)
        {
            End(job, store, "failed", null, e.Message, requestError: generating);
        }
        catch (IOException e)
        {
            End(job, store, "failed", null, e.Message);
        }
        catch (Exception e)
        {
            End(job, store, "failed", null, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// The one place a job ends: records it in the store (images, parameters, status, error), then publishes its final event.
    /// Used when it runs, when it is withdrawn from the queue, and when the server stops with it waiting.
    /// </summary>
    internal static void End(Job job, ResultStore store, string status, GenerationResult? result, string? error, bool requestError = false)
    {
        var parameters = Parameters(job.Model, result?.Request ?? job.Request, result?.Images.FirstOrDefault());
        var files = store.Save(job.Id, job.Created, job.Model, status, parameters, result?.Images ?? [], error,
            (DateTimeOffset.UtcNow - job.Created).TotalSeconds);
        var data = new JsonObject { ["id"] = job.Id };
        if (status == "done")
        {
            data["images"] = new JsonArray(files.Select(f => (JsonNode)JsonValue.Create("/v1/results/" + f)!).ToArray());
            data["seed"] = result!.Seed;
            data["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3);
            data["parameters"] = parameters;
        }
        else data["message"] = error ?? "cancelled";
        job.Finish(status, new JobEvent(status, data), result, files, error, requestError);
    }

    /// <summary>The parameters of a request as the API names them (what "use these settings again" sends back).</summary>
    public static JsonObject Parameters(string model, GenerationRequest r, byte[]? firstPng)
    {
        int? width = r.Width, height = r.Height;
        // the image's size, unless the image is the init image an inpainted crop was put back into (not the run's size)
        if (firstPng is { Length: > 24 } && r.PaddingMaskCrop is null)
        {
            width ??= BinaryPrimitives.ReadInt32BigEndian(firstPng.AsSpan(16, 4));
            height ??= BinaryPrimitives.ReadInt32BigEndian(firstPng.AsSpan(20, 4));
        }
        var o = new JsonObject
        {
            ["model"] = model,
            ["prompt"] = r.Prompt,
            ["negative_prompt"] = r.NegativePrompt,
            ["width"] = width,
            ["height"] = height,
            ["steps"] = r.Steps,
            ["guidance_scale"] = r.GuidanceScale,
            ["seed"] = r.Seed,
            ["scheduler"] = r.Scheduler,
            ["n"] = r.Count,
        };
        if (r.Loras is { Count: > 0 } loras)
            o["loras"] = new JsonObject(loras.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)JsonValue.Create(l.Value))));
        if (r.FreeU is { } f) o["freeu"] = new JsonArray(f.S1, f.S2, f.B1, f.B2);
        // the steps above are their count (the service's request as run); the image prompt itself is not echoed, as the init image is not
        if (r.Timesteps is { } ts) o["timesteps"] = new JsonArray(ts.Select(t => (JsonNode)JsonValue.Create(t)).ToArray());
        if (r.IPAdapterScale is double ipScale) o["ip_adapter_scale"] = ipScale;
        if (r.InitImage is not null) o["strength"] = r.Strength;
        if (r.PaddingMaskCrop is int pad) o["padding_mask_crop"] = pad;
        return o;
    }

    /// <summary>Step and preview events, published on the worker's thread (never blocks on a subscriber).</summary>
    private sealed class Reporter(Job job) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress p)
        {
            job.Publish(new JobEvent("step", new JsonObject
            {
                ["id"] = job.Id,
                ["step"] = p.Step,
                ["total"] = p.TotalSteps,
                ["seconds_per_step"] = Math.Round(p.SecondsPerStep, 4),
                ["eta_seconds"] = Math.Round(p.Remaining.TotalSeconds, 2),
            }));
            if (p.PreviewPng is { } png)
                job.Publish(new JobEvent("preview", new JsonObject
                {
                    ["id"] = job.Id,
                    ["step"] = p.Step,
                    ["image"] = "data:image/png;base64," + Convert.ToBase64String(png),
                }));
        }
    }
}
