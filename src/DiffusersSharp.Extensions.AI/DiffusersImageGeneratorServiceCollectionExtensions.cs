using DiffusersSharp.Extensions.AI;
using Microsoft.Extensions.AI;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary><c>services.AddDiffusersImageGenerator(o => o.Model = "…")</c>.</summary>
public static class DiffusersImageGeneratorServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="DiffusersImageGenerator"/> as the <see cref="IImageGenerator"/> (a singleton, loaded at first
    /// use) and returns the builder, so middleware composes as usual:
    /// <c>services.AddDiffusersImageGenerator(o => o.Model = "path").UseLogging().UseOpenTelemetry();</c>
    /// </summary>
    public static ImageGeneratorBuilder AddDiffusersImageGenerator(this IServiceCollection services, Action<DiffusersImageGeneratorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddImageGenerator(_ =>
        {
            var options = new DiffusersImageGeneratorOptions();
            configure(options);
            return new DiffusersImageGenerator(options);
        });
    }
}
