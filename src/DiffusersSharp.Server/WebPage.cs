using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace DiffusersSharp.Server;

/// <summary>The web page at <c>/</c>: <c>index.html</c>, <c>app.js</c> and <c>style.css</c>, embedded in the assembly (no Node build).</summary>
internal static class WebPage
{
    private static readonly (string Path, string Resource, string Type)[] Files =
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "style.css", "text/css; charset=utf-8"),
    ];

    public static void Map(WebApplication app)
    {
        foreach (var (path, resource, type) in Files)
        {
            byte[] bytes = Read(resource);
            app.MapGet(path, (RequestDelegate)(ctx =>
            {
                ctx.Response.ContentType = type;
                ctx.Response.Headers.CacheControl = "no-cache";
                return ctx.Response.Body.WriteAsync(bytes, ctx.RequestAborted).AsTask();
            }));
        }
    }

    private static byte[] Read(string name)
    {
        using var s = typeof(WebPage).Assembly.GetManifestResourceStream("DiffusersSharp.Server.wwwroot." + name)
                      ?? throw new InvalidOperationException($"the page file {name} is not embedded in {typeof(WebPage).Assembly.GetName().Name}");
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}
