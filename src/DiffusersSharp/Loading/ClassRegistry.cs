namespace DiffusersSharp.Loading;

/// <summary>
/// Classes by diffusers' class name (a config's <c>_class_name</c>) → their factory: the pipeline and VAE registries. One
/// index-initialiser line per class (<c>[X.Name] = X.FromPretrained</c>); later layers add theirs with
/// <see cref="Register"/>, from any thread.
/// </summary>
/// <typeparam name="TFactory">What a class name maps to.</typeparam>
internal sealed class ClassRegistry<TFactory> where TFactory : class
{
    private readonly Dictionary<string, TFactory> _entries = new(StringComparer.Ordinal);

    /// <summary>Sets the factory of a class (the index initialiser's form of <see cref="Register"/>).</summary>
    public TFactory this[string className] { set => Register(className, value); }

    /// <summary>The class names known, sorted (ordinal), for error messages and listings.</summary>
    public IReadOnlyList<string> KnownClasses
    {
        get { lock (_entries) return _entries.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList(); }
    }

    /// <summary>Makes <paramref name="className"/> known, or replaces its factory.</summary>
    public void Register(string className, TFactory factory)
    {
        lock (_entries) _entries[className] = factory;
    }

    /// <summary>The factory of <paramref name="className"/>, or null when the class is not known.</summary>
    public TFactory? Find(string className)
    {
        lock (_entries) return _entries.GetValueOrDefault(className);
    }
}
