//! Distances on the Earth's surface, shared by the read path (`freePorts`) and the simulator
//! (viability answers).

/// Mean Earth radius (IUGG), in meters.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in meters between two WGS 84 points (haversine).
pub fn haversine_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = super::haversine_m(-3.0, -38.5, -4.0, -38.5);
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
        assert_eq!(super::haversine_m(-3.7, -38.5, -3.7, -38.5), 0.0);
    }
}
